"""The TypeScript client (clients/ts): it type-checks under `tsc --strict`, and its example
calls every function of the interface on the test database with the answers its types say.
`npm ci` is run here, from the pinned package-lock.json."""

import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from credits import db
from testing.databases import logged_in_as
from testing.node import requires_node
from tests.test_node_example import as_url

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "ts"
PLANS = Path(__file__).resolve().parent.parent / "plans.example.toml"

pytestmark = requires_node("the TypeScript client")


def npm(*args):
    """npm ARGS in the client's folder; its output when it fails."""
    done = subprocess.run(["npm", *args], cwd=CLIENT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="session")
def built():
    """The client's dependencies as the lockfile pins them, checked and compiled once."""
    npm("ci", "--no-audit", "--no-fund", "--loglevel=error")
    npm("exec", "--", "tsc", "--strict", "--noEmit")
    npm("exec", "--", "tsc")


def run_example(database_url, user_id):
    """node dist/example.js USER: one JSON line per step."""
    done = subprocess.run(
        ["node", "dist/example.js", user_id],
        cwd=CLIENT,
        env={**os.environ, "DATABASE_URL": as_url(database_url)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {step.pop("step"): step for step in map(json.loads, done.stdout.splitlines())}


def test_the_client_type_checks_strictly_and_calls_every_function(
    built, database_url, run_cli, sql_run
):
    assert run_cli("load-plans", str(PLANS)).exit_code == 0
    steps = run_example(database_url, "alice")

    assert (steps["bonus"]["amount"], steps["bonus"]["balance"]) == (50, 50)
    assert steps["can buy"]["allowed"] is True
    assert set(steps["pack"]) == {
        "user_id",
        "reference_id",
        "batch_id",
        "source",
        "amount",
        "expires_at",
        "balance",
        "replayed",
        "package_id",
        "credits",
        "bonus",
    }
    assert steps["grant"]["balance"] == 555
    assert steps["spend service"]["amount"] == 3 and steps["reverse"]["returned"] == 3
    assert steps["spend in a transaction"]["balance"] == 545
    # The refusal carries its numbers in DETAIL, as JSON, and the CR code as a constant.
    assert steps["refused"]["code"] == "CR001"
    assert steps["refused"]["detail"] == {"user_id": "alice", "spendable": 545, "asked": 1000000}
    assert steps["bad argument"]["code"] == "22023"
    assert steps["void"]["voided"] == 500
    assert set(steps["account"]) == {"user_id", "balance", "spendable", "next_expiry", "next_grant"}
    assert steps["account"]["balance"] == 45

    # Bigint columns come back as numbers, and next_cursor leads to the rest of the statement.
    first, rest = steps["statement"]["first"], steps["statement"]["rest"]
    assert [e["type"] for e in first["entries"]] == ["void", "consume", "reverse"]
    assert first["next_cursor"] == first["entries"][-1]["entry_id"]
    assert isinstance(first["next_cursor"], int)
    assert [e["type"] for e in rest["entries"]] == ["consume", "grant", "grant", "grant"]
    assert rest["next_cursor"] is None
    ids = [e["entry_id"] for e in first["entries"] + rest["entries"]]
    assert ids == sorted(ids, reverse=True) and all(isinstance(i, int) for i in ids)

    # Run again, as a retrying app would: nothing is granted twice.
    again = run_example(database_url, "alice")
    assert again["bonus"]["replayed"] and again["pack"]["replayed"]


def test_the_client_runs_as_the_app_role_of_roles_sql(built, server_url, database_url, run_cli):
    """A TypeScript host connected as the least-privileged app role: every call works."""
    assert run_cli("load-plans", str(PLANS)).exit_code == 0
    role = f"credits_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("SELECT set_config('credits.app_role', %s, false)", (role,))
        owner.execute(db.queries["roles"])
    with logged_in_as(server_url, database_url, role) as url:
        steps = run_example(url, "bob")
    assert steps["account"]["balance"] == 45
    assert steps["refused"]["detail"] == {"user_id": "bob", "spendable": 545, "asked": 1000000}
