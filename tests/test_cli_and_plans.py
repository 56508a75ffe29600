"""The operators' commands: plans from TOML, grant, expire, spend, account, verify, old names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE_PLANS = Path(__file__).resolve().parent.parent / "plans.example.toml"


def plans(sql_run):
    return {
        p["plan_id"]: (p["monthly_credits"], p["validity_days"])
        for p in sql_run("SELECT * FROM credits.plans")
    }


def test_load_plans_from_the_example_file(run_cli, sql_run):
    result = run_cli("load-plans", str(EXAMPLE_PLANS))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "path": str(EXAMPLE_PLANS),
        "plans": 3,
        "packages": 2,
        "services": 3,
        "registration": 1,
        "limits": 1,
    }
    assert plans(sql_run) == {
        "starter": (100, 30),
        "pro": (1000, 60),
        "enterprise": (10000, None),
    }
    assert sql_run("SELECT * FROM credits.registration") == [
        {"singleton": True, "credits": 50, "validity_days": 30}
    ]
    packages = sql_run("SELECT * FROM credits.packages ORDER BY package_id")
    assert [tuple(p.values()) for p in packages] == [
        ("large", 5000, 500, 365),
        ("small", 500, 0, 90),
    ]
    services = sql_run("SELECT * FROM credits.services ORDER BY service")
    assert {s["service"]: s["cost"] for s in services} == {"chat": 1, "image": 10, "video": 50}
    assert sql_run("SELECT max_balance FROM credits.limits") == [{"max_balance": 20000}]


def test_load_plans_updates_and_keeps_plans_not_in_the_file(run_cli, sql_run, add_plan, tmp_path):
    add_plan("legacy", 5, 10)
    add_plan("pro", 1, 1)
    path = tmp_path / "plans.toml"
    path.write_text("[plans.pro]\nmonthly_credits = 2000\n")
    assert run_cli("load-plans", str(path)).exit_code == 0
    assert plans(sql_run) == {"legacy": (5, 10), "pro": (2000, None)}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[plans.pro]\nmonthly_credits = 0\n", "monthly_credits must be a whole number above 0"),
        ("[plans.pro]\nmonthly_credits = -3\n", "above 0"),
        ("[plans.pro]\nmonthly_credits = 1.5\n", "whole number"),
        ("[plans.pro]\nmonthly_credits = '100'\n", "whole number"),
        ("[plans.pro]\nmonthly_credits = true\n", "whole number"),
        ("[plans.pro]\nmonthly_credits = 99999999999\n", "whole number"),
        ("[plans.pro]\nmonthly_credits = 10\nvalidity_days = 0\n", "validity_days"),
        ("[plans.pro]\nvalidity_days = 30\n", "monthly_credits is required"),
        ("[plans.pro]\nmonthly_credits = 10\nvalidity = 30\n", "unknown field(s) ['validity']"),
        ("[plan.pro]\nmonthly_credits = 10\n", "unknown top-level key(s) ['plan']"),
        ("", "defines no plans"),
        ("[plans\nmonthly_credits = ", "not valid TOML"),
        ("plans = 3\n", "defines no plans"),
        ("[plans]\npro = 3\n", "must be a table"),
        # Beyond what a grant can compute: every grant of the plan would fail.
        ("[plans.pro]\nmonthly_credits = 10\nvalidity_days = 2147483647\n", "at most 36500"),
        ("[plans.pro]\nmonthly_credits = 10\nvalidity_days = 36501\n", "at most 36500"),
        ('[plans."pro\\u0000"]\nmonthly_credits = 10\n', "must not contain control characters"),
        ('[plans."pro\\u001b[2J"]\nmonthly_credits = 10\n', "control characters"),
        (f'[plans."{"p" * 201}"]\nmonthly_credits = 10\n', "ids must be 1 to 200 characters"),
        ("[plans.pro]\nmonthly_credits = 1\n[registration]\nvalidity_days = 3\n", "credits is"),
        ("[plans.pro]\nmonthly_credits = 1\n[registration]\ncredits = 0\n", "above 0"),
        ("[plans.pro]\nmonthly_credits = 1\n[packages.big]\ncredits = 5\nbonus = -1\n", "bonus"),
        ("[plans.pro]\nmonthly_credits = 1\n[packages.big]\nbonus = 5\n", "credits is required"),
        (
            "[plans.pro]\nmonthly_credits = 1\n[packages.big]\ncredits = 2147483000\nbonus = 700\n",
            "credits + bonus must be below",
        ),
        (
            "[plans.pro]\nmonthly_credits = 1\n[packages.big]\ncredits = 5\n"
            "validity_days = 99999\n",
            "at most 36500",
        ),
        ('[plans.pro]\nmonthly_credits = 1\n[packages."a\\u0000"]\ncredits = 5\n', "control"),
        ("[plans.pro]\nmonthly_credits = 1\n[services]\nchat = 0\n", "cost must be"),
        ("[plans.pro]\nmonthly_credits = 1\n[services]\nchat = '1'\n", "cost must be"),
        ("[plans.pro]\nmonthly_credits = 1\n[limits]\nmax_balance = -1\n", "max_balance"),
        ("[plans.pro]\nmonthly_credits = 1\n[limits]\ncap = 5\n", "unknown field(s) ['cap']"),
    ],
)
def test_bad_plans_file_is_refused_whole(run_cli, sql_run, tmp_path, text, message):
    path = tmp_path / "plans.toml"
    path.write_text(
        "[plans.good]\nmonthly_credits = 10\n\n" + text if text.startswith("[plans.") else text
    )
    result = run_cli("load-plans", str(path))
    # A plans file that cannot be loaded is bad input: exit status 2 (it was 1 before the
    # command line gave bad input its own status), one line, nothing written.
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert plans(sql_run) == {}
    for table in ("registration", "packages", "services", "limits"):
        assert sql_run(f"SELECT count(*) AS n FROM credits.{table}") == [{"n": 0}]


def test_a_plans_file_without_plans_loads_its_other_sections(run_cli, sql_run, tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text("[services]\nchat = 3\n[limits]\n")
    result = run_cli("load-plans", str(path))
    assert result.exit_code == 0, result.output
    assert sql_run("SELECT * FROM credits.services") == [{"service": "chat", "cost": 3}]
    assert sql_run("SELECT max_balance FROM credits.limits") == [{"max_balance": None}]


def test_missing_plans_file_is_a_clear_error(run_cli, tmp_path):
    result = run_cli("load-plans", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2
    assert "cannot read" in result.output and "Traceback" not in result.output


def test_cli_grant_expire_consume_balance_and_verify(run_cli, add_plan, subscribe):
    add_plan("pro", 100, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")

    dry = run_cli("grant", "--date", "2026-03-15", "--dry-run")
    assert dry.exit_code == 0, dry.output
    body = json.loads(dry.output.strip().splitlines()[-1])
    assert body["dryRun"] is True and body["results"]["successful"] == 1

    result = run_cli("grant", "--date", "2026-03-15")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)  # the progress bar goes to stderr
    assert body["date"] == "2026-03-15" and body["complete"] is True
    assert body["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert "Granting 2026-03-15" in result.stderr

    result = run_cli("consume", "alice", "30", "--reference", "order-1")
    assert result.exit_code == 0, result.output
    spent = json.loads(result.stdout)
    assert (spent["amount"], spent["balance"], spent["replayed"]) == (30, 70, False)
    result = run_cli("consume", "alice", "30", "--reference", "order-1")
    assert json.loads(result.stdout)["replayed"] is True

    result = run_cli("consume", "alice", "71", "--reference", "order-2")
    assert result.exit_code == 1
    assert "Error: user 'alice' has 70 spendable credits, 71 asked for" in result.output

    result = run_cli("balance", "alice")
    assert result.exit_code == 0
    balance = json.loads(result.stdout)
    assert balance["balance"] == 70
    assert [(b["remaining"], b["amount"]) for b in balance["batches"]] == [(70, 100)]

    result = run_cli("expire")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["results"]["processedBatches"] == 0

    result = run_cli("verify")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"ok": True, "count": 0, "users": []}


@pytest.mark.parametrize(
    "args, message",
    [
        (["grant", "--date", "2026-02-30"], "not a calendar date"),
        (["grant", "--date", "2026-13-01"], "not a calendar date"),
        (["grant", "--date", "2999-01-01"], "in the future"),
        (["grant", "--date", "15/03/2026"], "YYYY-MM-DD"),
        (["consume", "alice", "0", "--reference", "r"], "0 is not in the range 1<=x<=2147483647"),
        (["consume", "alice", "5"], "Missing option '--reference'"),
    ],
)
def test_cli_bad_input_is_a_clear_error(run_cli, sql_run, args, message):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output  # bad input, as for every command
    assert message in result.output
    assert "Traceback" not in result.output
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--limit", "99999999999999999999"],
        ["runs", "--limit", "10001"],
        ["runs", "--limit", "0"],
        ["consume", "alice", "99999999999999999999", "--reference", "r"],
        ["consume", "alice", "2147483648", "--reference", "r"],
    ],
)
def test_cli_numbers_out_of_range_are_a_one_line_usage_error(run_cli, sql_run, args):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "is not in the range" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert sql_run("SELECT count(*) AS n FROM credits.transactions")[0]["n"] == 0


@pytest.mark.breaks_invariant
def test_verify_names_the_users_whose_balance_does_not_add_up(
    run_cli, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "pro", "2026-01-10")
    assert run_cli("grant", "--date", "2026-03-15").exit_code == 0
    sql_run("UPDATE credits.balances SET balance = 90 WHERE user_id = 'bob'")

    result = run_cli("verify")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "ok": False,
        "count": 1,
        "users": [
            {
                "user_id": "bob",
                "balance": 90,
                "ledger_total": 100,
                "active_remaining": 100,
                "misstated_entries": 0,
            }
        ],
    }
    assert result.stderr == "Error: 1 user(s) do not add up.\n"


def test_cli_without_a_reachable_database_is_one_line_saying_why():
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
        "CREDITS_DB_TIMEOUT": "2",
    }
    done = subprocess.run(
        [sys.executable, "-m", "credits", "account", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    # The pool's retries are not printed, one by one: the error says what the last one met.
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: database unavailable: ") and "Connection refused" in line


def test_db_url_prints_the_database_url_it_uses(run_cli, database_url):
    result = run_cli("db-url")
    assert result.exit_code == 0, result.output
    assert result.output == database_url + "\n"


def test_db_url_says_the_embedded_server_is_stopped_rather_than_start_it_for_a_moment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRON_SECRET")}
    env["CREDITS_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "credits", "db-url"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"Error: the embedded PostgreSQL under {tmp_path / 'data'} is stopped")
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()


def test_a_first_command_on_the_embedded_database_connects_without_errors(tmp_path):
    """The pool's threads connect side by side while the embedded server starts for the first
    time: none may read its half-written postmaster.pid or release another thread's lock."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRON_SECRET")}
    env["CREDITS_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "credits", "account", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["balance"] == 0
    assert "error connecting" not in done.stderr
    assert "reconnection attempt" not in done.stderr


def test_deprecated_consume_says_so_on_stderr_and_spends_as_spend_does(
    run_cli, add_plan, subscribe
):
    add_plan("pro", 100, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")
    assert run_cli("grant", "--date", "2026-03-15").exit_code == 0

    result = run_cli("consume", "alice", "30", "--reference", "order-1")

    assert result.exit_code == 0, result.output
    spent = json.loads(result.stdout)
    assert (spent["user_id"], spent["amount"], spent["balance"]) == ("alice", 30, 70)
    assert result.stderr == "Deprecated: `consume` will be removed; use `spend`.\n"
    again = json.loads(run_cli("spend", "alice", "30", "--reference", "order-1").stdout)
    assert (again["balance"], again["replayed"]) == (70, True)  # the same spend, not a second


def test_deprecated_balance_says_so_on_stderr_and_agrees_with_account(run_cli, add_plan, subscribe):
    add_plan("pro", 100, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")
    assert run_cli("grant", "--date", "2026-03-15").exit_code == 0

    result = run_cli("balance", "alice")

    assert result.exit_code == 0, result.output
    balance = json.loads(result.stdout)
    assert (balance["user_id"], balance["balance"]) == ("alice", 100)
    assert [batch["remaining"] for batch in balance["batches"]] == [100]
    assert result.stderr == "Deprecated: `balance` will be removed; use `account`.\n"
    assert json.loads(run_cli("account", "alice").stdout)["balance"] == 100


def test_deprecated_names_are_left_out_of_the_help(run_cli):
    listed = run_cli("--help").stdout
    assert "  spend " in listed and "  account " in listed
    assert "  consume " not in listed and "  balance " not in listed


def test_the_command_line_does_not_import_the_web_layer():
    """The CLI shares the jobs' parameters and bodies with the routes, not the routes' modules."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, credits.cli; print(*sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    assert "credits.cli" in loaded
    assert [name for name in loaded if name.startswith(("credits.web", "flask"))] == []
