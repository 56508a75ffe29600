"""Plans and subscriptions written as the host app writes them.

Each seeder takes `execute(statement, params)`: a test's sql_run, or a cursor's execute.
"""

# A start whose due day is the 1st: due on any day of every later month, so a test that runs a
# grant "today" finds it due whatever the calendar says (a start on the 10th is due only from
# the 10th of a month on).
DUE_ON_THE_FIRST = "2026-01-01"


def add_plan(execute, plan_id, monthly_credits, validity_days=None):
    """A plan granting monthly_credits a month, each batch spendable validity_days (or ever)."""
    execute(
        "INSERT INTO credits.plans VALUES (%s, %s, %s)", (plan_id, monthly_credits, validity_days)
    )


def add_package(execute, package_id, credits, bonus, validity_days=None):
    """A credit pack: credits plus a bonus, spendable validity_days from purchase (or ever)."""
    execute(
        "INSERT INTO credits.packages VALUES (%s, %s, %s, %s)",
        (package_id, credits, bonus, validity_days),
    )


def add_subscription(execute, sub_id, user_id, plan_id, started_at, status="active", ends_at=None):
    """One subscription; started_at and ends_at take ISO timestamps (UTC when no offset)."""
    execute(
        "INSERT INTO credits.subscriptions VALUES (%s, %s, %s, %s, %s, %s)",
        (sub_id, user_id, plan_id, status, started_at, ends_at),
    )


def add_subscribers(execute, count, plan="pro", started_at="2026-01-10"):
    """Active subscriptions sub-1 .. sub-N of users user-1 .. user-N, in one statement."""
    execute(
        "INSERT INTO credits.subscriptions "
        "SELECT 'sub-' || i, 'user-' || i, %s, 'active', %s::timestamptz, NULL "
        "FROM generate_series(1, %s) AS i",
        (plan, started_at, count),
    )


def add_one_batch_each(execute, count, expires_at=None):
    """Users user-000001 .. user-N, each granted one batch of 10 credits under bonus-<n> (active,
    expiring at expires_at or never), with its balance and ledger entry; analyzed."""
    execute(
        "INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining, "
        "       expires_at) "
        "SELECT 'user-' || lpad(i::text, 6, '0'), 'bonus', 'bonus-' || i, 10, 10, %s "
        "  FROM generate_series(1, %s) AS i",
        (expires_at, count),
    )
    execute(
        "INSERT INTO credits.balances (user_id, balance) "
        "SELECT user_id, remaining FROM credits.batches"
    )
    execute(
        "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id) "
        "SELECT user_id, id, 'grant', amount, reference_id FROM credits.batches"
    )
    execute("ANALYZE credits.batches; ANALYZE credits.balances; ANALYZE credits.transactions")
