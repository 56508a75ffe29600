"""The ledger's invariant: balance = sum of ledger = sum of active remaining, for every user."""

from credits import config, db, ledger


def invariant_violations(database_url):
    """(some users whose balance does not add up, how many there are) on that database."""
    settings = config.Settings.from_mapping({"DATABASE_URL": database_url})
    pool = db.open_pool(settings, max_size=1)
    try:
        return ledger.find_invariant_violations(pool)
    finally:
        pool.close()
