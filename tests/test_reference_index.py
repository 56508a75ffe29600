"""The batches' reference index: unique references, a month's grants side by side.

A reference is unique through `batches_reference_key`, an index on (its last seven
characters, the reference): a subscription grant's month first, so a day's grants write to
one month's part of the index instead of a page per subscription across all of history
(docs/PERFORMANCE.md, the growth run). Releases before it had a unique constraint on the
reference alone; applying the schema replaces that one in place.
"""

from datetime import date

import psycopg
import pytest

from credits import db, jobs
from testing import seeders


def reference_indexes(sql_run):
    return [
        row["name"]
        for row in sql_run(
            "SELECT indexrelid::regclass::text AS name FROM pg_index "
            " WHERE indrelid = 'credits.batches'::regclass AND indisunique "
            "   AND indexrelid <> 'credits.batches_pkey'::regclass"
        )
    ]


def test_an_upgrade_replaces_the_old_reference_key_and_grants_nothing_twice(
    settings, pool, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    # The database as the previous release left it: no migrations recorded, the reference
    # unique on its own, and no record of the grant (the record is only a shortcut: the
    # reference must stop a double).
    sql_run(
        "DROP TABLE credits.schema_migrations; "
        "DROP INDEX credits.batches_reference_key; "
        "ALTER TABLE credits.batches "
        "  ADD CONSTRAINT batches_reference_id_key UNIQUE (reference_id); "
        "DELETE FROM credits.subscription_grants"
    )
    upgraded = db.open_pool(settings)
    try:
        db.prepare(upgraded)
        run = jobs.grant(upgraded, settings, date(2026, 3, 16))
    finally:
        upgraded.close()
    assert reference_indexes(sql_run) == ["credits.batches_reference_key"]
    assert (run.results["successful"], run.results["skipped"]) == (0, 1)
    assert sql_run("SELECT reference_id, amount FROM credits.batches") == [
        {"reference_id": "subscription:s1:2026-03", "amount": 100}
    ]
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql_run(
            "INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining) "
            "VALUES ('bob', 'subscription', 'subscription:s1:2026-03', 100, 100)"
        )


@pytest.fixture
def many_batches(sql_run, add_plan, subscribe):
    """20,000 one-off batches and a subscription of their first user, analyzed."""
    seeders.add_one_batch_each(sql_run, 20_000)
    add_plan("pro", 100, 30)
    subscribe("s1", "user-000001", "pro", "2026-01-10")


def test_every_lookup_by_reference_reads_the_index(database_url, pool, settings, many_batches):
    jobs.grant(pool, settings, date(2026, 3, 15))
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        replay = conn.execute("SELECT credits.grant_credits('user-000002', 10, 'bonus', 'bonus-2')")
        assert replay.fetchone()[0]["replayed"] is True
        conn.execute("SELECT credits.void_grant('bonus-3')")
        account = conn.execute("SELECT credits.account('user-000001')").fetchone()[0]
        assert account["next_grant"]["amount"] == 100
        [(seq_scans, index_scans)] = conn.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
            " WHERE relid = 'credits.batches'::regclass"
        ).fetchall()
    assert (seq_scans, index_scans > 0) == (0, True)
