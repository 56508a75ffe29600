"""The Node.js example (examples/node) run under Node against the test database: sign-up bonus,
a pack from the payment webhook, and an AI call whose own row and spend commit or roll back
together. `npm ci` is run here, from the pinned package-lock.json."""

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from psycopg.conninfo import conninfo_to_dict

from testing.node import install_locked, requires_node

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "node"
PLANS = Path(__file__).resolve().parent.parent / "plans.example.toml"

pytestmark = requires_node("the Node example")


@pytest.fixture(scope="session")
def node_modules():
    """The example's dependencies, installed once per session exactly as the lockfile pins."""
    install_locked(EXAMPLE)


def as_url(conninfo):
    """The test database's connection string as the postgresql:// URL `pg` reads; a Unix
    socket folder (the embedded PostgreSQL's) goes in the query, where `pg` looks for it."""
    parts = conninfo_to_dict(conninfo)
    user, port, dbname = parts.get("user", "postgres"), parts.get("port", 5432), parts["dbname"]
    password = parts.get("password") or ""
    if parts["host"].startswith("/"):
        query = urlencode({"host": parts["host"], "port": port, "user": user, "password": password})
        return f"postgresql:///{quote(dbname)}?{query}"
    secret = f":{quote(password)}" if password else ""
    return f"postgresql://{quote(user)}{secret}@{parts['host']}:{port}/{quote(dbname)}"


def run_demo(database_url, user_id):
    """node demo.js USER: one JSON line per step."""
    done = subprocess.run(
        ["node", "demo.js", user_id],
        cwd=EXAMPLE,
        env={**os.environ, "DATABASE_URL": as_url(database_url)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {step["step"]: step for step in map(json.loads, done.stdout.splitlines())}


def test_the_node_example_grants_bonus_and_pack_and_spends_in_the_apps_transaction(
    node_modules, database_url, run_cli, sql_run
):
    assert run_cli("load-plans", str(PLANS)).exit_code == 0
    steps = run_demo(database_url, "alice")

    assert (steps["signup"]["amount"], steps["signup"]["replayed"]) == (50, False)
    assert steps["signup again"]["replayed"] is True
    assert (steps["payment"]["amount"], steps["payment"]["balance"]) == (500, 550)
    assert steps["payment retried"]["replayed"] is True
    assert (steps["ai call"]["amount"], steps["ai call"]["balance"]) == (1, 549)
    assert steps["ai call too big"]["error"] == "insufficient_credits"
    assert steps["account"]["spendable"] == 549
    assert [e["type"] for e in steps["statement"]["entries"]] == ["consume", "grant", "grant"]

    # The refused call's own row rolled back with its spend; the good one committed with it.
    assert sql_run("SELECT id FROM public.ai_calls") == [{"id": "call-alice-1"}]
    spends = sql_run(
        "SELECT reference_id, service FROM credits.transactions WHERE type = 'consume'"
    )
    assert spends == [{"reference_id": "call-alice-1", "service": "chat"}]

    # Run again, as a retrying app would: nothing is granted or spent twice.
    again = run_demo(database_url, "alice")
    assert again["payment"]["replayed"] and again["ai call"]["replayed"]
    assert sql_run("SELECT balance FROM credits.balances") == [{"balance": 549}]
