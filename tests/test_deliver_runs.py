"""Delivery runs: each deliver call (route or CLI) is a run of job deliver in credits.job_runs,
so a receiver refusing every event shows on the console's Runs page, in `runs` and /metrics."""

import json
import uuid

import psycopg
import pytest
from click.testing import CliRunner

from credits import config, delivery_runs, events
from credits.cli import cli
from credits.console import operators
from tests.console_support import KEY, PASSWORD, sign_in
from tests.test_webhooks import OTHER_SECRET, grant, hooked, receiver  # noqa: F401 (fixtures)

DELIVER = "/api/jobs/credits/deliver"
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def deliver_runs(sql_run):
    """The deliver runs in credits.job_runs, oldest first."""
    return sql_run(
        "SELECT id, status, results, error, finished_at FROM credits.job_runs "
        "WHERE job = 'deliver' ORDER BY started_at"
    )


@pytest.fixture
def refused(make_app, hooked):  # noqa: F811 (the fixture imported above)
    """The service whose webhook secret differs from the receiver's, console and metrics on."""
    return make_app(
        **{**hooked, "CREDITS_WEBHOOK_SECRET": OTHER_SECRET},
        CREDITS_CONSOLE_KEY=KEY,
        CREDITS_METRICS_TOKEN=METRICS_TOKEN,
    )


def signed_in_client(app):
    """A client of app signed in as ann, an operator."""
    operators.add(app.extensions["credits"]["pool"], "ann", "operator", PASSWORD)
    client = app.test_client()
    assert sign_in(client, "ann").status_code == 303
    return client


def test_a_wrong_secret_is_a_failed_deliver_run_in_the_console_the_cli_and_the_metrics(
    sql_run,
    refused,
    receiver,  # noqa: F811
    auth,
    run_cli,
):
    grant(sql_run, "alice", 10, "a")
    body = refused.test_client().get(DELIVER, headers=auth).get_json()
    refusal = f"event 1: HTTP 401 from {receiver.url}"
    assert body["lastError"] == refusal

    (run,) = deliver_runs(sql_run)
    assert str(run["id"]) == body["jobId"] and run["status"] == "failed"
    assert run["error"] == f"every attempt failed; the last: {refusal}"
    assert run["results"] == {
        "delivered": 0,
        "failed": 1,
        "givenUp": 0,
        "deleted": 0,
        "pending": 1,
        "lastError": refusal,
    }
    # A failed delivery writes no credits.job_failed: it would go to the receiver refusing it.
    assert sql_run("SELECT type FROM credits.events") == [{"type": "credits.granted"}]

    console = signed_in_client(refused)
    listed = console.get("/admin/runs?job=deliver&status=failed").text
    assert f"/admin/runs/{body['jobId']}" in listed and refusal in listed
    assert '<span class="status failed">failed</span>' in listed
    page = console.get(f"/admin/runs/{body['jobId']}").text
    assert "Deliver run" in page and refusal in page and "delivered=0" in page

    shown = run_cli("runs", "--job", "deliver")
    assert shown.exit_code == 0, shown.output
    (summary,) = json.loads(shown.stdout)["runs"]
    assert summary["jobId"] == body["jobId"] and summary["status"] == "failed"
    assert summary["error"].endswith(refusal)
    assert list(summary["results"]) == [*events.RESULTS, "lastError"]

    metrics = refused.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    text = metrics.get_data(as_text=True)
    assert 'credits_job_last_run_status{credits_job="deliver",status="failed"} 1.0' in text
    assert 'credits_job_last_run_result{credits_job="deliver",result="failed"} 1.0' in text
    assert 'credits_job_last_success_timestamp_seconds{credits_job="deliver"' not in text


def test_the_cli_deliver_is_a_run_too_and_says_its_id(
    sql_run,
    receiver,  # noqa: F811
    database_url,
):
    grant(sql_run, "alice", 10, "a")
    env = {"CREDITS_WEBHOOK_URL": receiver.url, "CREDITS_WEBHOOK_SECRET": OTHER_SECRET}
    result = CliRunner().invoke(cli, ["deliver"], env={"DATABASE_URL": database_url, **env})
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    (run,) = deliver_runs(sql_run)
    assert str(run["id"]) == body["jobId"] and run["status"] == "failed"
    assert "HTTP 401 from" in run["error"]


def test_a_delivery_that_empties_the_queue_succeeded_and_one_stopped_early_is_partial(
    sql_run,
    pool,
    hooked,  # noqa: F811
    receiver,  # noqa: F811
):
    settings = config.Settings.from_mapping(hooked)
    for n in range(5):
        grant(sql_run, f"user{n}", 1, f"r{n}")
    # One taken, then three failures in a row: the call stops with an event left.
    receiver.answers = [204, 500, 500, 500]
    done = delivery_runs.deliver(pool, settings, None, uuid.uuid4())
    assert (done.delivered, done.failed, done.complete) == (1, 3, False)
    sql_run("UPDATE credits.events SET next_attempt_at = now() WHERE delivered_at IS NULL")
    delivery_runs.deliver(pool, settings, None, uuid.uuid4())
    partial, succeeded = deliver_runs(sql_run)
    assert partial["status"] == "partial" and partial["error"] is None
    assert partial["results"]["lastError"] == f"event 4: HTTP 500 from {receiver.url}"
    assert succeeded["status"] == "succeeded" and succeeded["results"]["delivered"] == 4
    assert succeeded["results"]["lastError"] is None


def test_a_call_that_attempted_no_event_keeps_no_run(
    client,
    make_app,
    hooked,  # noqa: F811
    receiver,  # noqa: F811
    auth,
    sql_run,
):
    # No receiver set, then a receiver with nothing pending: a call every few minutes keeps
    # a row only when it had work.
    for caller in (client, make_app(**hooked).test_client()):
        body = caller.get(DELIVER, headers=auth).get_json()
        assert body["success"] and body["complete"] and body["jobId"]
    assert deliver_runs(sql_run) == []
    assert receiver.taken == []


def test_delivery_runs_past_the_events_retention_of_7_days_are_deleted_and_no_other_run(
    client, auth, sql_run
):
    for job, days in (("deliver", 8), ("deliver", 6), ("grant", 400)):
        sql_run(
            "INSERT INTO credits.job_runs (id, job, status, started_at) "
            "VALUES (%s, %s, 'succeeded', now() - make_interval(days => %s))",
            (uuid.uuid4(), job, days),
        )
    assert client.get(DELIVER, headers=auth).status_code == 200
    kept = sql_run(
        "SELECT job, extract(day FROM now() - started_at)::int AS days "
        "FROM credits.job_runs ORDER BY started_at"
    )
    assert kept == [{"job": "grant", "days": 400}, {"job": "deliver", "days": 6}]


def test_an_error_during_the_delivery_fails_the_run_with_its_reason(
    make_app,
    hooked,  # noqa: F811
    auth,
    sql_run,
    monkeypatch,
):
    grant(sql_run, "alice", 10, "a")

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(events, "_post_due", broken)
    response = make_app(**hooked).test_client().get(DELIVER, headers=auth)
    assert response.status_code == 500
    (run,) = deliver_runs(sql_run)
    assert run["status"] == "failed" and run["error"] == "RuntimeError: boom"
    assert run["results"]["delivered"] == 0 and run["finished_at"] is not None
    # The run's lock went with it: a later run finds nothing to abandon.
    monkeypatch.undo()
    make_app(**hooked).test_client().get(DELIVER, headers=auth)
    assert [r["status"] for r in deliver_runs(sql_run)] == ["failed", "succeeded"]


def test_a_run_whose_process_died_is_abandoned_by_the_next_and_a_live_one_is_not(
    client, auth, sql_run, database_url
):
    dead, live = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as holder:
        # The live run holds its lock, as delivery_runs.deliver does while it works.
        holder.execute(
            "SELECT pg_advisory_lock(hashtextextended('credits.deliver.' || %s::text, 0))",
            (str(live),),
        )
        for run_id in (dead, live):
            sql_run(
                "INSERT INTO credits.job_runs (id, job, status) VALUES (%s, 'deliver', 'running')",
                (run_id,),
            )
        body = client.get(DELIVER, headers=auth).get_json()
    statuses = {str(r["id"]): r["status"] for r in deliver_runs(sql_run)}
    # The call itself attempted no event (no receiver), so it keeps no row of its own.
    assert body["success"]
    assert statuses == {str(dead): "abandoned", str(live): "running"}
    # An abandoned delivery run writes no credits.job_failed either.
    assert sql_run("SELECT count(*) AS n FROM credits.events")[0]["n"] == 0


def test_the_delivery_after_a_job_call_is_part_of_that_call_not_a_run(
    make_app,
    hooked,  # noqa: F811
    receiver,  # noqa: F811
    add_plan,
    subscribe,
    auth,
    sql_run,
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    client = make_app(**hooked).test_client()
    assert client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth).status_code == 200
    assert len(receiver.taken) == 1
    assert [r["job"] for r in sql_run("SELECT job FROM credits.job_runs")] == ["grant"]
