"""Every command as a script reads it, `python -m credits COMMAND | jq`: one JSON document on
stdout, the log lines (plain or JSON) on stderr."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def credits_cli(database_url):
    """Run `python -m credits ...` as a process, its log lines as JSON (CREDITS_LOG_FORMAT)."""
    env = {**os.environ, "DATABASE_URL": database_url, "CREDITS_LOG_FORMAT": "json"}

    def run(*args, status=0):
        done = subprocess.run(
            [sys.executable, "-m", "credits", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == status, done.stderr
        return done

    return run


def result_of(done):
    """The one JSON document on stdout (json.loads refuses a second one or a log line)."""
    return json.loads(done.stdout)


def test_every_command_prints_one_json_result_and_logs_on_stderr(
    credits_cli, subscribe, database_url
):
    assert result_of(credits_cli("init-db"))["current"] is True
    loaded = result_of(credits_cli("load-plans", "plans.example.toml"))
    assert (loaded["plans"], loaded["packages"], loaded["services"]) == (3, 2, 3)
    assert (loaded["registration"], loaded["limits"]) == (1, 1)
    subscribe("s1", "alice", "enterprise", "2026-01-10")  # never expires

    assert result_of(credits_cli("expire"))["results"]["processedBatches"] == 0
    dry = credits_cli("grant", "--date", "2026-03-15", "--dry-run")
    assert result_of(dry)["results"]["successful"] == 1
    logged = [json.loads(line) for line in dry.stderr.splitlines() if line.startswith("{")]
    assert [entry["event"] for entry in logged] == ["started", "completed"]
    granted = result_of(credits_cli("grant", "--date", "2026-03-15"))
    assert granted["results"]["successful"] == 1

    assert result_of(credits_cli("spend", "alice", "30", "--reference", "r1"))["balance"] == 9970
    assert result_of(credits_cli("consume", "alice", "5", "--reference", "r2"))["balance"] == 9965
    assert result_of(credits_cli("balance", "alice"))["balance"] == 9965
    assert result_of(credits_cli("account", "alice"))["spendable"] == 9965
    assert len(result_of(credits_cli("statement", "alice"))["entries"]) == 3
    assert result_of(credits_cli("verify")) == {"ok": True, "count": 0, "users": []}
    runs = result_of(credits_cli("runs"))["runs"]
    assert [(run["job"], run["status"]) for run in runs] == [
        ("grant", "succeeded"),
        ("expire", "succeeded"),
    ]
    assert runs[0]["results"] == granted["results"] and runs[0]["jobId"] == granted["jobId"]
    # The one exception: db-url is a bare string, for `psql "$(python -m credits db-url)"`.
    assert credits_cli("db-url").stdout == database_url + "\n"


def test_a_refusal_prints_nothing_on_stdout_and_one_line_on_stderr(credits_cli):
    done = credits_cli("spend", "alice", "5", "--reference", "r1", status=1)
    assert done.stdout == ""
    assert done.stderr == "Error: user 'alice' has 0 spendable credits, 5 asked for\n"


def test_the_docs_run_the_command_line_from_the_readme_s_venv():
    """The README installs into .venv: a bare `python -m credits grant` there is another Python,
    without the service's packages. Platform shells (`heroku run ...`) have their own."""
    bare = re.compile(r"(?<![\w/.])(?<!heroku run )python -m credits [a-z]")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line)
    ]
    assert found == [], "write .venv/bin/python -m credits, as the README installs it"


@pytest.mark.skipif(not shutil.which("jq"), reason="jq is not installed")
def test_grant_dry_run_piped_into_jq_with_json_logs(database_url):
    """The pipe as an operator types it: jq reads the result, the log lines stay on stderr."""
    env = {**os.environ, "DATABASE_URL": database_url, "CREDITS_LOG_FORMAT": "json"}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m credits grant --dry-run | jq -c ."],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dryRun"] is True
    assert "Logging error" not in done.stderr and "BrokenPipe" not in done.stderr
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()] == [
        "started",
        "completed",
    ]
