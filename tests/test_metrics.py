"""GET /metrics: who may scrape it, what it says of the jobs and of the requests, and what it
answers while the database is down."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from credits import config
from testing import SECRET
from testing.databases import connections_refused
from testing.seeders import DUE_ON_THE_FIRST

METRICS_TOKEN = "metrics-token-0123456789abcdef"
GRANT = "/api/jobs/credits/grant"
EXPIRE = "/api/jobs/credits/expire"


@pytest.fixture
def app(make_app):
    return make_app(CREDITS_METRICS_TOKEN=METRICS_TOKEN)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def scrape(client, token=METRICS_TOKEN):
    """The samples of one scrape, by (name, labels as a sorted tuple)."""
    response = client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def job_samples(samples, job):
    """The credits_job_* samples of one job, by name and their other labels."""
    return {
        (name, tuple((k, v) for k, v in labels if k != "credits_job")): value
        for (name, labels), value in samples.items()
        if name.startswith("credits_job_") and ("credits_job", job) in labels
    }


def expected_job_samples(row):
    """What /metrics must say of a job whose last run is this job_runs row, last success known."""
    expected = {
        ("credits_job_last_run_timestamp_seconds", ()): row["started_at"].timestamp(),
        ("credits_job_last_run_status", (("status", row["status"]),)): 1.0,
        ("credits_job_last_success_timestamp_seconds", ()): row["last_success"].timestamp(),
        **{
            ("credits_job_last_run_result", (("result", name),)): float(value)
            for name, value in row["results"].items()
        },
    }
    if row["finished_at"] is not None:
        took = (row["finished_at"] - row["started_at"]).total_seconds()
        expected[("credits_job_last_run_duration_seconds", ())] = took
    return expected


def last_runs(sql_run):
    """Each job's latest job_runs row, with when its latest success finished."""
    rows = sql_run(
        "SELECT DISTINCT ON (job) job, status, started_at, finished_at, results, "
        "(SELECT max(finished_at) FROM credits.job_runs s "
        " WHERE s.job = r.job AND s.status = 'succeeded') AS last_success "
        "FROM credits.job_runs r ORDER BY job, started_at DESC"
    )
    return {row["job"]: row for row in rows}


def approx_equal(actual, expected):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-5), key


def test_metrics_refuse_a_scrape_without_the_token_or_with_a_wrong_one(client):
    for headers in ({}, bearer("wrong-token-0123456789abcdef"), bearer(METRICS_TOKEN + "x")):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json() == {"error": "Unauthorized"}


def test_metrics_answer_the_metrics_token_and_the_job_secret(client):
    for token in (METRICS_TOKEN, SECRET):
        assert scrape(client, token)[("credits_database_up", ())] == 1.0


def test_the_metrics_token_runs_no_job(client, sql_run):
    assert client.get(GRANT, headers=bearer(METRICS_TOKEN)).status_code == 401
    assert client.get("/api/jobs/credits/status", headers=bearer(METRICS_TOKEN)).status_code == 401
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


def test_a_metrics_token_shorter_than_a_secret_stops_the_service(make_app):
    with pytest.raises(config.ConfigError, match="CREDITS_METRICS_TOKEN must be at least 16"):
        make_app(CREDITS_METRICS_TOKEN="short-token")


def test_without_a_metrics_token_only_the_job_secrets_scrape(make_app):
    client = make_app().test_client()
    assert scrape(client, SECRET)[("credits_database_up", ())] == 1.0
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 401


def test_jobs_that_never_ran_have_no_job_samples(client):
    samples = scrape(client)
    assert [key for key in samples if key[0].startswith("credits_job_")] == []


def test_job_metrics_are_the_last_runs_in_job_runs(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)
    subscribe("s2", "bob", "missing-plan", DUE_ON_THE_FIRST)  # cannot be granted: a failed row
    assert client.get(GRANT, headers=auth).status_code == 200
    assert client.get(EXPIRE, headers=auth).status_code == 200

    samples = scrape(client)
    runs = last_runs(sql_run)
    assert runs["grant"]["results"]["failed"] == 1
    for job in ("grant", "expire"):
        assert runs[job]["status"] == "succeeded"
        approx_equal(job_samples(samples, job), expected_job_samples(runs[job]))
    grant = job_samples(samples, "grant")
    assert grant[("credits_job_last_run_result", (("result", "failed"),))] == 1.0
    assert grant[("credits_job_last_run_result", (("result", "successful"),))] == 1.0


def test_a_failed_run_shows_failed_and_keeps_the_last_success(
    client, auth, sql_run, add_plan, subscribe, refuse_ledger_entries
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)
    subscribe("s2", "mallory", "pro", DUE_ON_THE_FIRST)
    assert client.get(EXPIRE, headers=auth).status_code == 200
    refuse_ledger_entries("mallory")
    assert client.get(GRANT, headers=auth).status_code == 500

    samples = scrape(client)
    runs = last_runs(sql_run)
    assert runs["grant"]["status"] == "failed"
    grant = job_samples(samples, "grant")
    assert grant[("credits_job_last_run_status", (("status", "failed"),))] == 1.0
    assert ("credits_job_last_run_status", (("status", "succeeded"),)) not in grant
    assert ("credits_job_last_success_timestamp_seconds", ()) not in grant  # never succeeded
    expire = job_samples(samples, "expire")
    assert expire[("credits_job_last_run_status", (("status", "succeeded"),))] == 1.0

    refuse_ledger_entries.undo()
    assert client.get(GRANT, headers=auth).status_code == 200
    approx_equal(
        job_samples(scrape(client), "grant"), expected_job_samples(last_runs(sql_run)["grant"])
    )


def test_requests_are_counted_by_route_method_and_status(client, auth):
    for _ in range(3):
        client.get("/healthz")
    client.get(GRANT)  # refused: 401
    client.post(EXPIRE, headers=auth)
    client.get("/api/jobs/credits/grant?dryRun=maybe", headers=auth)  # 400
    client.get("/no/such/route/4711")
    client.open("/healthz", method="BREW")

    samples = scrape(client)
    counts = {
        dict(labels)["route"] + " " + dict(labels)["method"] + " " + dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "credits_http_requests_total" and value > 0
    }
    assert counts == {
        "/healthz GET 200": 3,
        f"{GRANT} GET 401": 1,
        f"{EXPIRE} POST 200": 1,
        f"{GRANT} GET 400": 1,
        "unmatched GET 404": 1,
        "unmatched other 405": 1,  # no route takes BREW
    }
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert samples[("credits_http_request_duration_seconds_count", healthz)] == 3
    five = (("le", "5.0"), *healthz)
    assert samples[("credits_http_request_duration_seconds_bucket", tuple(sorted(five)))] == 3
    # The scrape itself is counted once answered, so the next scrape shows it.
    metrics = (("method", "GET"), ("route", "/metrics"), ("status", "200"))
    assert scrape(client)[("credits_http_requests_total", metrics)] == 1


def test_every_route_has_its_error_series_at_0_before_any_request(client):
    """So rate() sees a route's first 500 (it needs a sample before it)."""
    samples = scrape(client)
    for route, method in ((GRANT, "GET"), (GRANT, "POST"), (EXPIRE, "GET"), ("/healthz", "GET")):
        for status in ("500", "503"):
            labels = (("method", method), ("route", route), ("status", status))
            assert samples[("credits_http_requests_total", labels)] == 0
            assert samples[("credits_http_request_duration_seconds_count", labels)] == 0


def test_each_app_counts_its_own_requests(make_app):
    first, second = make_app(CREDITS_METRICS_TOKEN=METRICS_TOKEN), make_app()
    first.test_client().get("/healthz")
    samples = scrape(second.test_client(), SECRET)
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert samples[("credits_http_requests_total", healthz)] == 0
    assert scrape(first.test_client())[("credits_http_requests_total", healthz)] == 1


def test_while_the_database_is_down_metrics_answer_200_with_database_up_0(
    client, auth, server_url, database_url
):
    assert client.get(EXPIRE, headers=auth).status_code == 200
    with connections_refused(server_url, database_url):
        assert client.get(EXPIRE, headers=auth).status_code == 503
        samples = scrape(client)
    assert samples[("credits_database_up", ())] == 0.0
    assert [key for key in samples if key[0].startswith("credits_job_")] == []
    refused = (("method", "GET"), ("route", EXPIRE), ("status", "503"))
    assert samples[("credits_http_requests_total", refused)] == 1

    deadline = time.monotonic() + 30
    while scrape(client)[("credits_database_up", ())] != 1.0:
        assert time.monotonic() < deadline, "the job metrics did not come back"
    assert job_samples(scrape(client), "expire")
