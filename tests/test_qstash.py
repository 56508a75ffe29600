"""QStash's signed POSTs run the jobs when its keys are set; the bearer secret still does."""

import base64
import hashlib
import io
import time
import uuid

import jwt
import pytest

from credits import config
from credits.web.auth import MAX_BODY_BYTES
from testing.bodies import UnreadableBody
from testing.seeders import DUE_ON_THE_FIRST

CURRENT_KEY = "sig_current_0123456789abcdefghijkl"
NEXT_KEY = "sig_next_0123456789abcdefghijklmnop"
KEYS = {"QSTASH_CURRENT_SIGNING_KEY": CURRENT_KEY, "QSTASH_NEXT_SIGNING_KEY": NEXT_KEY}
PUBLIC_URL = "https://credits.example.com"
GRANT_URL = f"{PUBLIC_URL}/api/jobs/credits/grant"


def qstash_signature(key, body=b"", url=GRANT_URL, issued=None, lifetime=300, **claims):
    """An Upstash-Signature as QStash makes it: an HS256 JWT over the body's SHA-256."""
    issued = int(time.time()) if issued is None else issued
    payload = {
        "iss": "Upstash",
        "sub": url,
        "exp": issued + lifetime,
        "nbf": issued,
        "iat": issued,
        "jti": f"jwt_{uuid.uuid4().hex}",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
        **claims,
    }
    return jwt.encode(payload, key, algorithm="HS256")


@pytest.fixture
def qstash_client(make_app, add_plan, subscribe):
    """The service with QStash's keys set, and one subscription due today."""
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)
    return make_app(**KEYS, CREDITS_PUBLIC_URL=PUBLIC_URL).test_client()


def runs(sql_run):
    return sql_run("SELECT job, status FROM credits.job_runs")


def post_grant(client, signature, body=b""):
    return client.post(
        "/api/jobs/credits/grant", data=body, headers={"Upstash-Signature": signature}
    )


def test_post_signed_with_the_current_key_runs_the_grant(qstash_client, sql_run):
    response = post_grant(qstash_client, qstash_signature(CURRENT_KEY))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["results"]["successful"] == 1
    assert runs(sql_run) == [{"job": "grant", "status": "succeeded"}]


def test_post_signed_with_the_next_key_runs_too_while_qstash_rotates_keys(qstash_client):
    response = post_grant(qstash_client, qstash_signature(NEXT_KEY))
    assert response.status_code == 200


def test_a_body_qstash_sends_is_covered_by_the_signature(qstash_client):
    body = b'{"job": "grant"}'
    response = post_grant(qstash_client, qstash_signature(CURRENT_KEY, body), body)
    assert response.status_code == 200


def test_signed_expire_runs_the_expire_job(qstash_client):
    url = GRANT_URL.replace("grant", "expire")
    response = qstash_client.post(
        "/api/jobs/credits/expire",
        headers={"Upstash-Signature": qstash_signature(NEXT_KEY, url=url)},
    )
    assert response.status_code == 200
    assert response.get_json()["results"]["processedBatches"] == 0


# Made when the test runs, not when it is collected, so the times are right.
BAD_SIGNATURES = {
    "other key": lambda: qstash_signature("sig_someone_elses_key_0123456789"),
    "expired token": lambda: qstash_signature(CURRENT_KEY, issued=int(time.time()) - 600),
    "not valid yet": lambda: qstash_signature(CURRENT_KEY, issued=int(time.time()) + 600),
    "wrong issuer": lambda: qstash_signature(CURRENT_KEY, iss="Someone"),
    "wrong body hash": lambda: qstash_signature(CURRENT_KEY, body=b"other body"),
    "no body claim": lambda: jwt.encode(
        {"iss": "Upstash", "sub": GRANT_URL, "exp": int(time.time()) + 300, "nbf": 0},
        CURRENT_KEY,
        algorithm="HS256",
    ),
    "not a JWT": lambda: "not-a-jwt",
    "empty header": lambda: "",
}


@pytest.mark.parametrize("kind", sorted(BAD_SIGNATURES))
def test_a_bad_signature_gets_401_and_runs_nothing(qstash_client, sql_run, kind):
    response = post_grant(qstash_client, BAD_SIGNATURES[kind]())
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized"}
    assert runs(sql_run) == []


def test_a_signed_request_with_a_changed_body_gets_401(qstash_client, sql_run):
    signature = qstash_signature(CURRENT_KEY, body=b'{"job": "grant"}')
    assert post_grant(qstash_client, signature, b'{"job": "expire"}').status_code == 401
    assert runs(sql_run) == []


def test_the_bearer_secret_still_works_when_qstash_keys_are_set(qstash_client, auth):
    assert qstash_client.post("/api/jobs/credits/grant", headers=auth).status_code == 200


def test_without_qstash_keys_a_valid_signature_alone_gets_401(client, auth, sql_run):
    assert post_grant(client, qstash_signature(CURRENT_KEY)).status_code == 401
    assert runs(sql_run) == []
    assert client.post("/api/jobs/credits/grant", headers=auth).status_code == 200


def test_status_takes_a_signature_as_well(qstash_client):
    url = GRANT_URL.replace("grant", "status")
    response = qstash_client.get(
        "/api/jobs/credits/status",
        headers={"Upstash-Signature": qstash_signature(CURRENT_KEY, url=url)},
    )
    assert response.status_code == 503  # authorized; no run yet
    assert response.get_json()["healthy"] is False


@pytest.mark.parametrize("name", sorted(KEYS))
def test_one_signing_key_without_the_other_stops_the_service(name):
    with pytest.raises(config.ConfigError, match="must be set together"):
        config.Settings.from_mapping({name: KEYS[name], "CREDITS_PUBLIC_URL": PUBLIC_URL})


def test_signing_keys_never_appear_in_logs(qstash_client, caplog):
    post_grant(qstash_client, qstash_signature(CURRENT_KEY))
    post_grant(qstash_client, qstash_signature("sig_someone_elses_key_0123456789"))
    assert "Refused a request with an invalid Upstash-Signature" in caplog.text
    assert CURRENT_KEY not in caplog.text and NEXT_KEY not in caplog.text


@pytest.mark.parametrize(
    "signed_url, called",
    [
        (GRANT_URL.replace("grant", "status"), "/api/jobs/credits/grant"),  # another path
        ("https://other.example.com/api/jobs/credits/grant", "/api/jobs/credits/grant"),
        (GRANT_URL, "/api/jobs/credits/grant?date=2026-01-15"),  # a query added
        (f"{GRANT_URL}?dryRun=true", "/api/jobs/credits/grant"),  # the query dropped
        (f"{GRANT_URL}?dryRun=true", "/api/jobs/credits/grant?dryRun=false"),  # changed
    ],
)
def test_a_signature_for_another_url_gets_401_and_runs_nothing(
    qstash_client, sql_run, signed_url, called
):
    signature = qstash_signature(CURRENT_KEY, url=signed_url)
    response = qstash_client.post(called, headers={"Upstash-Signature": signature})
    assert response.status_code == 401
    assert runs(sql_run) == []


def test_a_signed_request_runs_exactly_the_signed_query(qstash_client, sql_run):
    signature = qstash_signature(CURRENT_KEY, url=f"{GRANT_URL}?dryRun=true")
    response = qstash_client.post(
        "/api/jobs/credits/grant?dryRun=true", headers={"Upstash-Signature": signature}
    )
    assert response.status_code == 200 and response.get_json()["dryRun"] is True
    assert runs(sql_run) == []  # a dry run writes nothing


def test_a_bad_token_is_refused_before_the_body_is_read(qstash_client, sql_run):

    response = qstash_client.post(
        "/api/jobs/credits/grant",
        input_stream=UnreadableBody(),
        headers={"Upstash-Signature": qstash_signature(CURRENT_KEY, url="https://x.example")},
        environ_overrides={"CONTENT_LENGTH": "100"},
    )
    assert response.status_code == 401
    assert runs(sql_run) == []


def test_a_signed_chunked_body_over_the_limit_gets_413_and_runs_nothing(qstash_client, sql_run):
    body = b"x" * (MAX_BODY_BYTES + 1)
    response = qstash_client.post(
        "/api/jobs/credits/grant",
        input_stream=io.BytesIO(body),
        headers={"Upstash-Signature": qstash_signature(CURRENT_KEY, body)},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 413
    assert runs(sql_run) == []


@pytest.mark.parametrize("url", [None, "credits.example.com", "https://x.example/?a=1"])
def test_signing_keys_need_the_public_url_they_sign_for(url):
    values = {**KEYS, "CREDITS_PUBLIC_URL": url} if url else dict(KEYS)
    with pytest.raises(config.ConfigError, match="CREDITS_PUBLIC_URL"):
        config.Settings.from_mapping(values)
