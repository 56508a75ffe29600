"""The jobs' chunk statements pass values between their own parts by windows, never by a join.

A CTE's row count is unknown to the planner until it runs: the grant's batches and raised
balances were each estimated at one row, so their join was planned as a nested loop, 25,000 x
25,000 comparisons a chunk (a minute each; the first grant of a million subscriptions took
nearly five). These tests read the plans PostgreSQL makes for the statements as the jobs call
them, on a few rows, where the planner chooses the same. And a chunk is planned with its own
key bounds even once its statement is prepared."""

import re
import uuid
from datetime import date, datetime, timezone

import psycopg
import pytest

from credits.db import queries
from credits.jobs.budget import Budget
from credits.jobs.grant import Grant
from credits.jobs.job import Chunk
from testing.seeders import add_plan, add_subscribers

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


def scans_of(node, relation):
    """Every plan node below node that reads `relation`."""
    found = [node] if node.get("Relation Name") == relation else []
    for child in node.get("Plans", []):
        found += scans_of(child, relation)
    return found


def test_a_prepared_grant_chunk_is_still_planned_with_its_key_bounds(pool, settings, sql_run):
    """psycopg prepares a statement on its sixth run, and PostgreSQL may then run it on a
    generic plan, made without the values: as the tables grew, it chose one that read every
    subscription for each chunk, and the first grant of 10,000,000 grew quadratic. A run's
    transaction has each of its statements planned with its own values, whatever the session
    (here a database that asks for generic plans) would do."""
    add_plan(sql_run, "pro", 100)
    add_subscribers(sql_run, 9)
    job = Grant(uuid.uuid4(), settings)
    chunk = Chunk(
        date(2026, 7, 31), datetime(2026, 7, 31, tzinfo=timezone.utc), None, "sub-3", "sub-6"
    )
    params = {
        **chunk.__dict__,
        "eligible_statuses": job.eligible_statuses,
        "job_id": job.job_id,
        "failures_kept": 100,
    }
    with pool.connection() as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        for _ in range(conn.prepare_threshold + 1):
            with Budget(None).transaction(conn):
                job.work_chunk(conn, chunk)
        [prepared] = conn.execute(
            "SELECT name FROM pg_prepared_statements "
            " WHERE statement LIKE '-- grant_due_subscriptions:%%'"
        ).fetchall()
        # The statement's values in psycopg's order: $1, $2, ... by first appearance.
        order = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", queries["grant_due_subscriptions"])))
        values = ", ".join(["%s"] * len(order))
        with Budget(None).transaction(conn):
            [row] = (
                psycopg.ClientCursor(conn)
                .execute(
                    f"EXPLAIN (FORMAT JSON) EXECUTE {prepared['name']}({values})",
                    [params[key] for key in order],
                )
                .fetchall()
            )
    [scan] = scans_of(row["QUERY PLAN"][0]["Plan"], "subscriptions")
    bounds = scan.get("Index Cond", "") + scan.get("Filter", "") + scan.get("Recheck Cond", "")
    assert "'sub-3'" in bounds and "$" not in bounds, scan
