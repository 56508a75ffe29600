"""Sessions racing each other in a test: waiting for a condition, and for a lock wait."""

import time

import psycopg

# What every call that moves a user's credits does first: lock the user's balance row.
LOCK_BALANCE = "SELECT balance FROM credits.balances WHERE user_id = %s FOR UPDATE"


def wait_until(condition, timeout=10):
    """Return once condition() is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def waiting_on_a_lock(database_url, query_like):
    """How many sessions whose query is LIKE `query_like` (any case) wait for a lock."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE %s",
            (query_like,),
        ).fetchone()[0]
