"""The secret: rotated without downtime, compared in constant time, never written out."""

import hmac
import logging

import pytest

import app as front_door
from app import create_app
from credits import config

from .conftest import SECRET

NEXT_SECRET = "next-secret-fedcba9876543210"
ROUTE = "/api/jobs/credits/expire"


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_during_rotation_the_current_and_the_next_secret_are_both_accepted(make_app):
    client = make_app(CRON_SECRET=f"{SECRET}, {NEXT_SECRET}\n").test_client()
    assert client.get(ROUTE, headers=bearer(SECRET)).status_code == 200
    assert client.get(ROUTE, headers=bearer(NEXT_SECRET)).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {SECRET},{NEXT_SECRET}",
        f"Bearer {SECRET}, {NEXT_SECRET}",
        f"Bearer {SECRET}, Bearer {NEXT_SECRET}",
        f"Bearer {SECRET}{NEXT_SECRET}",
        f"Bearer {NEXT_SECRET[:-1]}",
        f"Bearer {NEXT_SECRET} ",
        f"Bearer {SECRET[:8]}{NEXT_SECRET[8:]}",
    ],
)
def test_during_rotation_nothing_but_one_exact_secret_gets_in(make_app, sql_run, header):
    client = make_app(CRON_SECRET=f"{SECRET},{NEXT_SECRET}").test_client()
    assert client.get(ROUTE, headers={"Authorization": header}).status_code == 401
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


def test_after_rotation_the_old_secret_gets_401(make_app):
    client = make_app(CRON_SECRET=NEXT_SECRET).test_client()
    assert client.get(ROUTE, headers=bearer(SECRET)).status_code == 401
    assert client.get(ROUTE, headers=bearer(NEXT_SECRET)).status_code == 200


@pytest.mark.parametrize(
    "value, message",
    [
        (f"{SECRET},", "empty part"),
        (f",{SECRET}", "empty part"),
        (f"{SECRET},,{NEXT_SECRET}", "empty part"),
        (f"{SECRET},{NEXT_SECRET},third-secret-0123456789", "holds 3 secrets"),
        (f"{SECRET},short-next", "at least 16 characters"),
    ],
)
def test_a_wrong_secret_list_stops_the_service_and_the_error_does_not_show_it(
    test_config, value, message
):
    with pytest.raises(config.ConfigError, match=message) as raised:
        create_app({**test_config, "CRON_SECRET": value})
    assert "CRON_SECRET" in str(raised.value)
    for part in value.split(","):
        if part:
            assert part not in str(raised.value)


def test_every_accepted_secret_is_compared_in_constant_time_on_every_request(make_app, monkeypatch):
    client = make_app(CRON_SECRET=f"{SECRET},{NEXT_SECRET}").test_client()
    compared = []
    real_compare_digest = hmac.compare_digest

    def compare_digest(a, b):
        compared.append(b)
        return real_compare_digest(a, b)

    monkeypatch.setattr(front_door.hmac, "compare_digest", compare_digest)
    for header in (bearer(SECRET), bearer(NEXT_SECRET), bearer("x" * 30)):
        compared.clear()
        client.get(ROUTE, headers=header)
        # Both secrets every time: the first match does not cut the work short.
        assert sorted(compared) == sorted(
            [f"Bearer {SECRET}".encode(), f"Bearer {NEXT_SECRET}".encode()]
        )


def test_the_secret_never_appears_in_logs_or_bodies(make_app, caplog, capsys, sql_run):
    caplog.set_level(logging.DEBUG)
    client = make_app(CRON_SECRET=f"{SECRET},{NEXT_SECRET}").test_client()
    bodies = []
    for secret in (SECRET, NEXT_SECRET):
        for path, headers in [
            (ROUTE, bearer(secret)),
            (ROUTE, bearer(secret + "x")),
            (f"{ROUTE}?token={secret}", {}),
            (f"{ROUTE}?token={secret}", bearer(secret)),  # 400: unknown parameter
            ("/api/jobs/credits/grant?date=2999-01-01", bearer(secret)),  # 400: future
            ("/api/jobs/credits/refund", bearer(secret)),  # 404
        ]:
            bodies.append(client.get(path, headers=headers).get_data(as_text=True))
    # A run that fails: its reason goes to the log and job_runs, not the body.
    sql_run("ALTER TABLE credits.transactions RENAME TO transactions_moved")
    try:
        response = client.get("/api/jobs/credits/grant", headers=bearer(SECRET))
    finally:
        sql_run("ALTER TABLE credits.transactions_moved RENAME TO transactions")
    assert response.status_code == 500
    bodies.append(response.get_data(as_text=True))
    written = " ".join(bodies) + caplog.text + "".join(capsys.readouterr())
    written += " ".join(str(r) for r in sql_run("SELECT error, results FROM credits.job_runs"))
    assert "internal error" in written and "Unauthorized" in written
    for secret in (SECRET, NEXT_SECRET):
        assert secret not in written
