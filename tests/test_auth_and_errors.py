"""The bearer check, the startup check of the secret, and errors as JSON."""

import io

import pytest

from app import create_app
from credits import config
from credits.web.auth import MAX_BODY_BYTES

from .conftest import SECRET

ROUTES = ["/api/jobs/credits/grant", "/api/jobs/credits/expire"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong-secret-0123456789"},
        {"Authorization": f"bearer {SECRET}"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": SECRET},
        {"Authorization": f"Bearer {SECRET} "},
        {"Authorization": f"Bearer  {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": f"Bearer x{SECRET}"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"Authorization": f"Bearer {SECRET}, Bearer {SECRET}"},
        {"Authorization": "Bearer " + "a" * 10000},
        {"X-Cron-Secret": SECRET},
    ],
)
def test_anything_but_the_exact_secret_gets_401_and_runs_nothing(
    client, sql_run, add_plan, subscribe, route, headers
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    for method in (client.get, client.post):
        response = method(route, headers=headers)
        assert response.status_code == 401
        assert response.get_json() == {"error": "Unauthorized"}
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == 0


def test_secret_in_the_query_string_gets_401(client):
    response = client.get(f"/api/jobs/credits/grant?token={SECRET}&secret={SECRET}")
    assert response.status_code == 401


def test_unicode_header_gets_401(client):
    response = client.get(
        "/api/jobs/credits/grant",
        environ_overrides={"HTTP_AUTHORIZATION": "Bearer ключ-ключ-ключ-ключ"},
    )
    assert response.status_code == 401


def test_unknown_job_route_needs_the_secret_before_it_says_404(client, auth):
    assert client.get("/api/jobs/credits/refund").status_code == 401
    response = client.get("/api/jobs/credits/refund", headers=auth)
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found"}


def test_unknown_route_outside_the_jobs_gets_json_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found"}


@pytest.mark.parametrize("route", ROUTES)
def test_other_methods_get_json_405(client, auth, route):
    response = client.put(route, headers=auth)
    assert response.status_code == 405
    assert response.get_json() == {"error": "Method Not Allowed"}
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    assert client.delete(route).status_code == 401


def test_configured_secret_is_stripped_of_stray_whitespace(make_app, auth):
    app = make_app(CRON_SECRET=f"  {SECRET}\n")
    response = app.test_client().get("/api/jobs/credits/expire", headers=auth)
    assert response.status_code == 200


@pytest.mark.parametrize("secret", [None, "", "   \n", "short-secret-15"])
def test_service_refuses_to_start_without_a_long_enough_secret(test_config, secret):
    overrides = {**test_config, "CRON_SECRET": secret}
    if secret is None:
        del overrides["CRON_SECRET"]
    with pytest.raises(config.ConfigError, match="CRON_SECRET"):
        create_app(overrides)


def test_local_run_generates_its_secret_once_and_keeps_it(tmp_path):
    settings = config.Settings.from_mapping({"CREDITS_DATA_DIR": str(tmp_path / "data")})
    [first] = config.cron_secrets(settings)
    assert len(first) >= config.MIN_SECRET_LENGTH
    assert config.cron_secrets(settings) == (first,)
    assert (tmp_path / "data" / "cron_secret").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cron_secret"]


def test_local_run_uses_cron_secret_when_set(tmp_path):
    settings = config.Settings.from_mapping(
        {"CREDITS_DATA_DIR": str(tmp_path), "CRON_SECRET": SECRET}
    )
    assert config.cron_secrets(settings) == (SECRET,)
    assert not (tmp_path / "cron_secret").exists()


@pytest.mark.parametrize(
    "name, value",
    [
        ("CREDITS_DB_TIMEOUT", "soon"),
        ("CREDITS_DB_TIMEOUT", "0"),
        ("CREDITS_ELIGIBLE_STATUSES", "active,,"),
        ("CREDITS_CHUNK_SIZE", "1.5"),
        ("CREDITS_CHUNK_SIZE", "0"),
        ("CREDITS_TIME_BUDGET", "nan"),
        ("CREDITS_TIME_BUDGET", "-8"),
        ("CREDITS_TIME_BUDGET", "271"),  # leaves no margin before the 300 s worker timeout
        ("GUNICORN_TIMEOUT", "30"),
        ("CREDITS_CATCH_UP_DAYS", "29"),  # would reach back past the previous month
        ("CREDITS_CATCH_UP_DAYS", "-1"),
        ("CREDITS_CATCH_UP_DAYS", "7.5"),
        ("CREDITS_CATCH_UP_DAYS", "\uff17"),  # a full-width 7
    ],
)
def test_bad_settings_are_a_startup_error(test_config, name, value):
    with pytest.raises(config.ConfigError, match=name):
        create_app({**test_config, name: value})


@pytest.mark.parametrize("route", [*ROUTES, "/api/jobs/credits/status"])
def test_head_on_a_job_route_gets_405_and_runs_nothing(client, auth, sql_run, route):
    response = client.head(f"{route}?date=2026-03-15" if "grant" in route else route, headers=auth)
    assert response.status_code == 405
    allowed = set(response.headers["Allow"].split(", "))
    assert "HEAD" not in allowed and "GET" in allowed
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == 0


def test_head_on_healthz_still_answers(client):
    assert client.head("/healthz").status_code == 200


class UnreadableBody(io.BytesIO):
    """A request body that fails the test if the service reads a byte of it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readinto = read


@pytest.mark.parametrize(
    "headers",
    [{}, {"Upstash-Signature": "any"}, {"Authorization": "Bearer wrong-secret-0123456789"}],
)
def test_an_unauthenticated_body_is_never_read(client, sql_run, headers):
    response = client.post(
        "/api/jobs/credits/grant",
        input_stream=UnreadableBody(),
        headers=headers,
        environ_overrides={"CONTENT_LENGTH": "100"},
    )
    assert response.status_code == 401
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


@pytest.mark.parametrize("route", [*ROUTES, "/healthz"])
def test_a_body_over_the_limit_gets_413_before_it_is_read(client, auth, sql_run, route):
    length = MAX_BODY_BYTES + 1
    response = client.post(
        route,
        input_stream=UnreadableBody(),
        headers=auth,
        environ_overrides={"CONTENT_LENGTH": str(length)},
    )
    assert response.status_code == 413
    assert response.get_json() == {"error": "Request Entity Too Large"}
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0
