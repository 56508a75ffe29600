"""What monitors see: /healthz, the jobs' status, the recent runs table and JSON log lines."""

import json
import logging
import time
import uuid

import pytest

import credits
from credits import config
from testing.databases import connections_refused
from testing.seeders import DUE_ON_THE_FIRST

STATUS = "/api/jobs/credits/status"


def add_run(sql_run, job, status, hours_ago, results=None, error=None, run_date=None):
    """A job_runs row that started hours_ago and, unless running, took 1.5 s."""
    run_id = uuid.uuid4()
    sql_run(
        "INSERT INTO credits.job_runs (id, job, status, run_date, started_at, finished_at, "
        "results, error) VALUES (%s, %s, %s, %s, now() - make_interval(secs => %s), "
        "CASE WHEN %s = 'running' THEN NULL "
        "ELSE now() - make_interval(secs => %s) + interval '1.5 seconds' END, %s, %s)",
        (
            run_id,
            job,
            status,
            run_date,
            hours_ago * 3600,
            status,
            hours_ago * 3600,
            json.dumps(results) if results is not None else None,
            error,
        ),
    )
    return str(run_id)


def test_healthz_answers_200_without_auth_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_answers_503_while_the_database_is_down_and_200_again_after(
    client, server_url, database_url
):
    with connections_refused(server_url, database_url):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unavailable"}
    deadline = time.monotonic() + 30
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the health check did not recover"


def test_status_needs_the_bearer_secret(client):
    assert client.get(STATUS).status_code == 401
    assert client.get(STATUS, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_status_refuses_unknown_parameters(client, auth):
    response = client.get(f"{STATUS}?maxAge=1", headers=auth)
    assert response.status_code == 400


def test_status_before_any_run_answers_503_naming_both_jobs(client, auth):
    response = client.get(STATUS, headers=auth)
    assert response.status_code == 503
    body = response.get_json()
    assert body["healthy"] is False
    assert body["jobs"]["grant"] == {"lastRun": None, "lastSuccessAt": None, "stale": True}
    assert body["problems"] == [
        "no successful grant run in the last 26 hours",
        "no successful expire run in the last 26 hours",
    ]


def test_status_after_both_jobs_ran_answers_200_with_each_last_run(
    client, auth, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    grant = client.get("/api/jobs/credits/grant", headers=auth).get_json()
    expire = client.get("/api/jobs/credits/expire", headers=auth).get_json()

    response = client.get(STATUS, headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert body["healthy"] is True and body["maxAgeHours"] == 26
    assert list(body["jobs"]["grant"]["lastRun"]["results"]) == list(grant["results"])
    assert list(body["jobs"]["expire"]["lastRun"]["results"]) == list(expire["results"])
    assert "problems" not in body
    last_grant = body["jobs"]["grant"]["lastRun"]
    assert last_grant["jobId"] == grant["jobId"]
    assert last_grant["status"] == "succeeded"
    assert last_grant["date"] == grant["date"]
    assert last_grant["results"] == grant["results"]
    assert last_grant["duration"] >= 0 and last_grant["startedAt"] and last_grant["error"] is None
    assert body["jobs"]["grant"]["lastSuccessAt"] == last_grant["finishedAt"]
    assert body["jobs"]["expire"]["lastRun"]["jobId"] == expire["jobId"]
    assert body["jobs"]["expire"]["lastRun"]["results"] == expire["results"]
    assert body["jobs"]["expire"]["stale"] is False


def test_status_answers_503_when_the_last_successful_grant_is_older_than_26_hours(
    client, auth, sql_run
):
    add_run(sql_run, "grant", "succeeded", hours_ago=27, results={"processed": 1})
    add_run(sql_run, "expire", "succeeded", hours_ago=2, results={"processedBatches": 0})
    response = client.get(STATUS, headers=auth)
    assert response.status_code == 503
    body = response.get_json()
    assert body["jobs"]["grant"]["stale"] is True
    assert body["jobs"]["expire"]["stale"] is False
    assert body["problems"] == ["no successful grant run in the last 26 hours"]


def test_status_shows_a_failed_last_run_but_counts_only_succeeded_ones(client, auth, sql_run):
    ok_grant = add_run(sql_run, "grant", "succeeded", hours_ago=20, results={"processed": 3})
    failed = add_run(sql_run, "grant", "failed", hours_ago=1, error="database unavailable")
    add_run(sql_run, "expire", "succeeded", hours_ago=30)
    add_run(sql_run, "expire", "running", hours_ago=0.5)

    response = client.get(STATUS, headers=auth)
    body = response.get_json()
    assert response.status_code == 503  # expire: its last success is 30 hours old
    grant = body["jobs"]["grant"]
    assert grant["lastRun"]["jobId"] == failed and grant["lastRun"]["status"] == "failed"
    assert grant["lastRun"]["error"] == "database unavailable"
    assert grant["stale"] is False, f"the success of {ok_grant} 20 hours ago still counts"
    expire = body["jobs"]["expire"]["lastRun"]
    assert expire["status"] == "running" and expire["duration"] is None
    assert body["problems"] == ["no successful expire run in the last 26 hours"]


def test_status_threshold_is_a_setting(make_app, auth, sql_run):
    add_run(sql_run, "grant", "succeeded", hours_ago=3)
    add_run(sql_run, "expire", "succeeded", hours_ago=1)
    client = make_app(CREDITS_STATUS_MAX_AGE_HOURS="2").test_client()
    response = client.get(STATUS, headers=auth)
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["no successful grant run in the last 2 hours"]


@pytest.mark.parametrize("value", ["0", "-1", "a day"])
def test_a_bad_status_threshold_stops_the_service(value):
    with pytest.raises(config.ConfigError, match="CREDITS_STATUS_MAX_AGE_HOURS"):
        config.Settings.from_mapping({"CREDITS_STATUS_MAX_AGE_HOURS": value})


def test_status_answers_503_while_the_database_is_down(client, auth, server_url, database_url):
    with connections_refused(server_url, database_url):
        response = client.get(STATUS, headers=auth)
    assert response.status_code == 503
    assert response.get_json()["error"] == "database unavailable"


def test_runs_prints_the_recent_runs_newest_first_as_json(run_cli, sql_run):
    counts = {"processed": 2, "successful": 2, "skipped": 0, "failed": 0}
    older = add_run(sql_run, "grant", "succeeded", 25, counts, run_date="2026-03-01")
    failed = add_run(sql_run, "expire", "failed", 1, error="database unavailable")
    result = run_cli("runs")
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)["runs"]
    assert (first["jobId"], first["job"], first["status"]) == (failed, "expire", "failed")
    assert first["error"] == "database unavailable" and first["results"] is None
    assert (second["jobId"], second["job"], second["status"]) == (older, "grant", "succeeded")
    assert (second["duration"], second["date"]) == (1500, "2026-03-01")
    assert list(second["results"]) == ["processed", "successful", "skipped", "failed"]


def test_runs_filters_by_job_and_limits_the_count(run_cli, sql_run):
    for hours in (1, 2, 3):
        add_run(sql_run, "grant", "succeeded", hours)
    add_run(sql_run, "expire", "succeeded", 1)
    result = run_cli("runs", "--job", "grant", "--limit", "2")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [run["job"] for run in runs] == ["grant", "grant"]


def test_runs_without_any_run_is_an_empty_list(run_cli):
    result = run_cli("runs")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"runs": []}


def test_logs_are_plain_lines_by_default(client, auth, caplog):
    job_id = client.get("/api/jobs/credits/expire", headers=auth).get_json()["jobId"]
    formatter = logging.getLogger("credits").handlers[0].formatter
    lines = [formatter.format(r) for r in caplog.records if job_id in r.getMessage()]
    assert lines[0] == f"[Credits Expire Job {job_id}] Starting daily expire process"
    assert lines[1].startswith(f"[Credits Expire Job {job_id}] Completed in ")


def test_json_log_format_writes_one_object_per_line_with_the_run_fields(
    make_app, auth, add_plan, subscribe, caplog
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)
    client = make_app(CREDITS_LOG_FORMAT="json").test_client()
    try:
        body = client.get("/api/jobs/credits/grant", headers=auth).get_json()
        formatter = logging.getLogger("credits").handlers[0].formatter
        lines = [formatter.format(r) for r in caplog.records if body["jobId"] in r.getMessage()]
    finally:
        credits.configure_logging()  # plain lines again for the tests after this one
    started, completed = (json.loads(line) for line in lines)
    assert started["event"] == "started" and started["job"] == "grant"
    assert started["job_id"] == body["jobId"] and started["level"] == "info"
    assert completed["event"] == "completed"
    assert completed["job"] == "grant" and completed["job_id"] == body["jobId"]
    assert (
        completed["results"]
        == body["results"]
        == {
            "processed": 1,
            "successful": 1,
            "skipped": 0,
            "failed": 0,
        }
    )
    assert isinstance(completed["duration_ms"], int)
    assert completed["message"].startswith(f"[Credits Grant Job {body['jobId']}] Completed in ")
    assert completed["time"].endswith("+00:00")


def test_json_log_line_of_a_failed_run_carries_the_error(
    make_app, auth, sql_run, add_plan, subscribe, caplog
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)
    sql_run("""
        CREATE FUNCTION credits.refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'ledger refused the entry'; END $$;
        CREATE TRIGGER refuse_all BEFORE INSERT ON credits.transactions
            FOR EACH ROW EXECUTE FUNCTION credits.refuse_all();
    """)
    client = make_app(CREDITS_LOG_FORMAT="json").test_client()
    try:
        response = client.get("/api/jobs/credits/grant", headers=auth)
        formatter = logging.getLogger("credits").handlers[0].formatter
        failed = [json.loads(formatter.format(r)) for r in caplog.records if r.levelname == "ERROR"]
    finally:
        credits.configure_logging()
    assert response.status_code == 500
    entry = next(e for e in failed if e.get("event") == "failed")
    assert entry["job"] == "grant" and entry["job_id"] == response.get_json()["jobId"]
    assert "ledger refused the entry" in entry["error"] and entry["level"] == "error"
    assert isinstance(entry["duration_ms"], int)


def test_an_unknown_log_format_stops_the_service():
    with pytest.raises(config.ConfigError, match="CREDITS_LOG_FORMAT must be text or json"):
        config.Settings.from_mapping({"CREDITS_LOG_FORMAT": "xml"})
