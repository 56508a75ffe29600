"""Cloudflare: the Worker's scheduled handler under Node, and wrangler's settings."""

import json
import os
import re
import subprocess
import tomllib
from datetime import date

import psycopg
import pytest

from credits import db
from testing import SECRET

from .support import ALREADY_RUNNING, COMPLETE, DEPLOY, HARNESS, INCOMPLETE, NO_ANSWER, NODE

CLOUDFLARE = DEPLOY / "cloudflare"
SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *", "deliver": "*/5 * * * *"}
# Cloudflare's limits on one Cron Trigger invocation (deploy/cloudflare/README.md).
WALL_CLOCK_LIMIT_MS = 15 * 60 * 1000
FREE_PLAN_SUBREQUESTS = 50


def run_worker(cron, url, secret=SECRET, shorten_timeouts=False):
    """Call worker.js's scheduled handler with a fake event, as Cloudflare's cron trigger does."""
    if NODE is None:
        pytest.skip("node is not installed: the Cloudflare Worker cannot be run here")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WORKER_URL": (CLOUDFLARE / "worker.js").as_uri(),
        "CREDITS_URL": url,
        "CRON_SECRET": secret,
        "CRON": cron,
    }
    if shorten_timeouts:
        env["SHORTEN_TIMEOUTS"] = "1"
    return subprocess.run(
        [NODE, str(HARNESS / "worker.mjs")], env=env, capture_output=True, text=True, timeout=120
    )


def call_timeouts(result):
    """The timeout, in ms, the Worker gave each of its calls."""
    return json.loads(re.search(r"^TIMEOUTS: (.*)$", result.stdout, re.M)[1])


def wrangler_config():
    return tomllib.loads((CLOUDFLARE / "wrangler.toml").read_text())


def wrangler_crons():
    config = wrangler_config()
    assert config["main"] == "worker.js"
    return config["triggers"]["crons"]


def test_wrangler_schedules_grant_at_01_expire_at_04_utc_and_delivery_every_5_minutes():
    assert wrangler_crons() == [SCHEDULES["grant"], SCHEDULES["expire"], SCHEDULES["deliver"]]
    # Cloudflare refuses to deploy a Worker whose compatibility date is still to come.
    assert date.fromisoformat(wrangler_config()["compatibility_date"]) <= date.today()


def test_wrangler_is_pinned_and_locked():
    package = json.loads((CLOUDFLARE / "package.json").read_text())
    version = package["devDependencies"]["wrangler"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version, not a range"
    lock = json.loads((CLOUDFLARE / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"]["wrangler"] == version
    assert lock["packages"]["node_modules/wrangler"]["version"] == version
    wanted = lock["packages"]["node_modules/wrangler"]["engines"]["node"]
    assert package["engines"]["node"] == wanted  # the guide's Node version is wrangler's


def test_worker_module_exports_only_its_handler():
    """The Workers runtime takes every export for a handler and refuses to start on a constant."""
    if NODE is None:
        pytest.skip("node is not installed: the Cloudflare Worker cannot be run here")
    result = subprocess.run(
        [NODE, str(HARNESS / "exports.mjs"), (CLOUDFLARE / "worker.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["default"]


def test_worker_grant_trigger_grants_through_the_service(
    service, due_subscription, granted, job_runs
):
    result = run_worker(SCHEDULES["grant"], service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HANDLER RESOLVED" in result.stdout
    assert granted() == [{"user_id": "alice", "amount": 100}]
    assert job_runs() == ["grant"]


def test_each_wrangler_trigger_runs_its_own_job(service, job_runs):
    for cron in wrangler_crons():
        result = run_worker(cron, service + "/")  # a trailing slash in CREDITS_URL is fine
        assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs() == ["grant", "expire"]


def test_worker_deliver_trigger_calls_the_deliver_route_with_the_secret(scripted):
    stub = scripted((200, {"complete": True, "lastError": None}))
    result = run_worker(SCHEDULES["deliver"], stub.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HANDLER RESOLVED" in result.stdout
    assert stub.calls == [("/api/jobs/credits/deliver", f"Bearer {SECRET}")]


def test_worker_deliver_trigger_reaches_the_service(service):
    result = run_worker(SCHEDULES["deliver"], service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HANDLER RESOLVED" in result.stdout


def test_worker_throws_on_401_so_cloudflare_records_a_failure(service, job_runs):
    result = run_worker(SCHEDULES["expire"], service, secret="not-the-secret-0123456789")
    assert result.returncode == 1
    assert "HANDLER THREW: credits expire:" in result.stdout
    assert "answered HTTP 401" in result.stdout
    assert job_runs() == []


def test_worker_throws_on_a_cron_string_it_has_no_job_for(service, job_runs):
    result = run_worker("0 2 * * *", service)
    assert result.returncode == 1
    assert 'No credits job is scheduled at "0 2 * * *"' in result.stdout
    assert job_runs() == []


def test_worker_throws_when_the_service_cannot_be_reached():
    result = run_worker(SCHEDULES["grant"], "http://127.0.0.1:9")
    assert result.returncode == 1 and "HANDLER THREW" in result.stdout


def test_worker_calls_again_while_the_answer_is_incomplete(scripted):
    stub = scripted(INCOMPLETE, INCOMPLETE, COMPLETE)
    result = run_worker(SCHEDULES["grant"], stub.url)
    assert result.returncode == 0, result.stdout
    assert stub.calls == [("/api/jobs/credits/grant", f"Bearer {SECRET}")] * 3


def test_worker_gives_up_and_throws_after_10_incomplete_answers(scripted):
    stub = scripted(INCOMPLETE)
    result = run_worker(SCHEDULES["expire"], stub.url)
    assert result.returncode == 1
    assert 'still "complete": false after 10 calls' in result.stdout
    assert len(stub.calls) == 10


def test_worker_throws_on_a_server_error_between_calls(scripted):
    stub = scripted(INCOMPLETE, (500, {"success": False, "error": "internal error"}))
    result = run_worker(SCHEDULES["grant"], stub.url)
    assert result.returncode == 1 and "answered HTTP 500" in result.stdout
    assert len(stub.calls) == 2


def test_worker_calls_stay_inside_the_trigger_wall_clock_and_subrequest_limits(scripted):
    """The most the Worker can do: every call incomplete, each given its whole timeout."""
    stub = scripted(INCOMPLETE)
    result = run_worker(SCHEDULES["grant"], stub.url)
    timeouts = call_timeouts(result)
    assert len(timeouts) == len(stub.calls) == 10  # every call is given a timeout
    assert sum(timeouts) < WALL_CLOCK_LIMIT_MS
    assert len(stub.calls) <= FREE_PLAN_SUBREQUESTS


def test_worker_gives_up_on_a_call_that_never_answers(scripted):
    stub = scripted(NO_ANSWER)
    result = run_worker(SCHEDULES["expire"], stub.url, shorten_timeouts=True)
    assert result.returncode == 1
    assert "did not answer within 60 s" in result.stdout
    assert "HANDLER THREW" in result.stdout and call_timeouts(result) == [60_000]


def test_a_duplicate_delivery_finding_the_run_working_is_not_a_failure(scripted):
    """Cron Triggers are at least once: the second delivery gets the service's 409."""
    stub = scripted(ALREADY_RUNNING)
    result = run_worker(SCHEDULES["grant"], stub.url)
    assert result.returncode == 0, result.stdout
    assert "HANDLER RESOLVED" in result.stdout
    assert "another run is working" in result.stdout
    assert len(stub.calls) == 1  # it leaves the work to the run that holds it


def test_a_duplicate_delivery_while_a_run_holds_the_job_on_the_service(
    service, database_url, job_runs
):
    """The service's own 409: the job's lock held as a working run holds it."""
    with psycopg.connect(database_url, autocommit=True) as working_run:
        assert working_run.execute(db.queries["lock_job"], {"job": "grant"}).fetchone()[0]
        result = run_worker(SCHEDULES["grant"], service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "another run is working" in result.stdout
    assert "a grant run is already in progress" in result.stdout
