"""Statements over every user keep a sane plan whatever the statistics say.

The expire's chunk statements were written for the statistics of tables that had just been
filled (stale: they still say empty). Once autovacuum analyzed the batches of a big grant, as
it does within minutes in production, the chunk's due batches (`user_id = ANY (users)`) and
its balances were planned as scans of every row, for each chunk: an expire of a million
batches took 112 s instead of 14. The invariant check behind `verify` matched its per-user
sums by left joins that, analyzed, were planned as nested loops: 30 s at 20,000 users, and
at a million it did not finish (docs/PERFORMANCE.md, items 12 and 14). These tests read the
plans, not the clock.
"""

from datetime import datetime, timezone

import pytest

from credits.db import queries
from testing import seeders

USERS = 20_000
CHUNK = 1_000


@pytest.fixture
def expired_batches(sql_run):
    """USERS users, each granted one batch, still active, past its date; analyzed."""
    seeders.add_one_batch_each(sql_run, USERS, expires_at="2026-01-01T00:00:00Z")


def node_types(plan):
    """Every kind of node in a plan (EXPLAIN's JSON)."""
    types = {plan["Node Type"]}
    for child in plan.get("Plans", []):
        types |= node_types(child)
    return types


def scanned_whole(plan):
    """The tables a plan (EXPLAIN's JSON) reads from end to end."""
    tables = {plan["Relation Name"]} if plan["Node Type"] == "Seq Scan" else set()
    for child in plan.get("Plans", []):
        tables |= scanned_whole(child)
    return tables


def explain(sql_run, statement, params):
    [row] = sql_run("EXPLAIN (FORMAT JSON) " + statement, params)
    return row["QUERY PLAN"][0]["Plan"]


def test_an_expire_chunk_reads_its_users_batches_and_balances_by_index(sql_run, expired_batches):
    users = [f"user-{i:06d}" for i in range(1, CHUNK + 1)]
    params = {
        "users": users,
        "cutoff": datetime(2026, 6, 1, tzinfo=timezone.utc),
        "job_id": None,
        "after_key": None,
        "last_key": users[-1],
        "keys": None,
    }
    assert scanned_whole(explain(sql_run, queries["lock_expiring_balances"], params)) == set()
    assert scanned_whole(explain(sql_run, queries["expire_batches"], params)) == set()


def test_the_invariant_check_matches_its_sums_without_nested_loops(sql_run, expired_batches):
    plan = explain(sql_run, queries["find_invariant_violations"], {"limit": 100})
    assert "Nested Loop" not in node_types(plan)
