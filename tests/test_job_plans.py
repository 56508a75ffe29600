"""The jobs' chunk statements pass values between their own parts by windows, never by a join.

A CTE's row count is unknown to the planner until it runs: the grant's batches and raised
balances were each estimated at one row, so their join was planned as a nested loop, 25,000 x
25,000 comparisons a chunk (a minute each; the first grant of a million subscriptions took
nearly five). These tests read the plans PostgreSQL makes for the statements as the jobs call
them, on a few rows, where the planner chooses the same."""

import uuid
from datetime import datetime, timezone

import pytest

from credits.db import queries

JOIN_NODES = {"Nested Loop", "Hash Join", "Merge Join"}


def scanned_ctes(node):
    """The CTEs a plan node reads below it, through sorts and materializations."""
    if node["Node Type"] == "CTE Scan":
        return {node["CTE Name"]}
    names = set()
    for child in node.get("Plans", []):
        if child.get("Parent Relationship") in ("Outer", "Inner"):
            names |= scanned_ctes(child)
    return names


def joins_of_ctes(node, found):
    """Every join whose two sides both read only the statement's own CTEs."""
    if node["Node Type"] in JOIN_NODES:
        sides = [c for c in node["Plans"] if c.get("Parent Relationship") in ("Outer", "Inner")]
        if len(sides) == 2 and all(only_ctes(side) for side in sides):
            found.append(sorted(scanned_ctes(node)))
    for child in node.get("Plans", []):
        joins_of_ctes(child, found)
    return found


def only_ctes(node):
    """Whether a plan node reads nothing but CTEs."""
    if node["Node Type"] == "CTE Scan":
        return True
    children = [c for c in node.get("Plans", []) if c.get("Parent Relationship") != "InitPlan"]
    return bool(children) and all(only_ctes(child) for child in children)


def plan_of(sql_run, statement, params):
    [row] = sql_run("EXPLAIN (FORMAT JSON) " + queries[statement], params)
    return row["QUERY PLAN"][0]["Plan"]


def test_the_plans_reader_finds_a_join_of_two_ctes(sql_run):
    [row] = sql_run(
        "EXPLAIN (FORMAT JSON) WITH a AS MATERIALIZED (SELECT 1 AS k), "
        "b AS MATERIALIZED (SELECT 1 AS k) SELECT * FROM a JOIN b USING (k)"
    )
    assert joins_of_ctes(row["QUERY PLAN"][0]["Plan"], []) == [["a", "b"]]


def test_a_grant_chunk_joins_none_of_its_own_parts(sql_run):
    params = {
        "run_date": "2026-07-31",
        "eligible_statuses": ["active"],
        "catch_up_from": None,
        "after_key": None,
        "last_key": "s9",
        "keys": None,
        "job_id": uuid.uuid4(),
        "failures_kept": 100,
    }
    assert joins_of_ctes(plan_of(sql_run, "grant_due_subscriptions", params), []) == []


@pytest.mark.parametrize("users", [["alice"], [f"user-{i}" for i in range(100)]])
def test_an_expire_chunk_joins_none_of_its_own_parts(sql_run, users):
    params = {
        "users": users,
        "cutoff": datetime(2026, 8, 1, tzinfo=timezone.utc),
        "job_id": uuid.uuid4(),
    }
    assert joins_of_ctes(plan_of(sql_run, "expire_batches", params), []) == []
