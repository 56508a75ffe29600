"""Hostile input: a fuzz run over openapi.yaml, and Authorization headers that must not get in.

The suite runs a short version; CREDITS_FUZZ_EXAMPLES makes it longer (docs/RELIABILITY.md).
"""

import base64
import os
import socket
import string
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import psycopg
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo
from schemathesis import GenerationMode

from credits import jobs
from reliability.load import SECRET as LOAD_SECRET
from reliability.load import Service

from .conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("CREDITS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROUTES = ["/api/jobs/credits/grant", "/api/jobs/credits/expire"]
TABLES = ("job_runs", "batches", "transactions", "balances")

figures = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    """What was tried, printed after this file's tests (run with -s; docs/RELIABILITY.md)."""
    yield
    print("\nfuzz: " + ", ".join(f"{n} {k}" for k, n in sorted(figures.items())))


class AppUnderTest:
    """The WSGI app the fuzzed requests go to: the current test's, set by the fixture below."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


# The parameters are fuzzed with the right secret; the Authorization header is fuzzed on its own
# below. Without the security section, no fuzzed case counts on a header the call then adds.
description = yaml.safe_load((ROOT / "openapi.yaml").read_text())
del description["security"]
schema = schemathesis.openapi.from_dict(description)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
schema.config.update(base_url="http://localhost")
schema.app = AppUnderTest()


@pytest.fixture
def app_under_test(app):
    schema.app.app = app
    yield
    schema.app.app = None


def row_counts(sql_run):
    return {t: sql_run(f"SELECT count(*) AS n FROM credits.{t}")[0]["n"] for t in TABLES}


@pytest.fixture
def customers(pool, settings, add_plan, subscribe):
    """Subscribers a grant would give credits to, whatever the run date; both jobs run once,
    so the status route answers 200 unless something is wrong."""
    add_plan("pro", 100, 30)
    add_plan("forever", 10)
    for day in (1, 15, 31):
        subscribe(f"s{day}", f"user-{day}", "pro", f"2000-01-{day:02d}")
        subscribe(f"f{day}", f"user-{day}", "forever", f"2000-01-{day:02d}")
    jobs.grant(pool, settings, date(2000, 2, 1))
    jobs.expire(pool, settings)


@schema.parametrize()
@FUZZ
def test_fuzzed_requests_get_no_5xx_and_refused_ones_write_nothing(
    case, app_under_test, sql_run, customers
):
    """Every request the description allows, and many it does not, with the right secret."""
    before = row_counts(sql_run)
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {SECRET}"},
        # A future date is a well-formed date the description cannot rule out; it gets 400.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
    figures[f"{case.method} {response.status_code}"] += 1
    assert response.status_code < 500
    if response.status_code != 200:
        assert row_counts(sql_run) == before


# Headers close to the right one: the secret with something before, after or inside it, other
# schemes, other spacing and case, cut short, doubled, or lost among arbitrary text.
NEAR = st.sampled_from(["", " ", "  ", "\t", ",", ";", "=", "x", "0", "\u00a0", "\u200b", "%20"])
SCHEMES = st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer:", ""])
SECRETS = st.sampled_from([SECRET, SECRET.upper(), SECRET[:-1], SECRET[1:], SECRET * 2])
HEADERS = st.one_of(
    st.builds(lambda a, s, b, x, c: f"{a}{s}{b}{x}{c}", NEAR, SCHEMES, NEAR, SECRETS, NEAR),
    st.builds(lambda s, x, n: f"{s} {x[:n]}{x[n + 1 :]}", SCHEMES, SECRETS, st.integers(0, 30)),
    st.builds(lambda x, n: f"Bearer {x}" * n, SECRETS, st.integers(2, 4)),
    st.text(max_size=60).map(lambda t: f"Bearer {SECRET}{t}"),
    st.text(max_size=60).map(lambda t: f"{t}Bearer {SECRET}"),
    st.text(alphabet=string.printable, max_size=200),
    st.text(max_size=200),  # any unicode, as a server might hand it over
    st.integers(1000, 100_000).map(lambda n: "Bearer " + "a" * n),
)


@given(header=HEADERS, route=st.sampled_from(ROUTES), post=st.booleans(), query=st.booleans())
@FUZZ
def test_no_authorization_header_but_the_exact_secret_gets_in(
    client, sql_run, customers, header, route, post, query
):
    """Whatever the header (or a secret in the query string), only the exact one runs a job."""
    path = f"{route}?token={SECRET}&secret={SECRET}" if query else route
    method = client.post if post else client.get
    before = row_counts(sql_run)
    response = method(path, environ_overrides={"HTTP_AUTHORIZATION": header})
    figures[f"header {response.status_code}"] += 1
    if header == f"Bearer {SECRET}":
        assert response.status_code == (400 if query else 200)
    else:
        assert response.status_code == 401, header
        assert response.get_json() == {"error": "Unauthorized"}
        assert SECRET not in response.get_data(as_text=True)
    if response.status_code != 200:
        assert row_counts(sql_run) == before


@pytest.fixture(scope="module")
def served(server_url, template_name):
    """The Procfile's gunicorn on a database of its own (raw requests, as they come on the wire)."""
    name = f"credits_wire_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_name)
            )
        )
    try:
        with Service(make_conninfo(server_url, dbname=name), workers=2) as service:
            yield service, make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def raw_get(port, header_lines, path=ROUTES[1]):
    """Send bytes as they are and return the status code."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
    request += b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


RIGHT = f"Authorization: Bearer {LOAD_SECRET}".encode()
WIRE_CASES = [
    [RIGHT, RIGHT],
    [RIGHT, b"Authorization: Bearer wrong-secret-0123456789"],
    [b"Authorization: Bearer wrong-secret-0123456789", RIGHT],
    [RIGHT, b"Authorization: "],
    [b"Authorization: Bearer " + LOAD_SECRET.encode() + b"\xe9"],
    [b"Authorization: Bearer " + LOAD_SECRET.encode() + b"\x00"],
    ["Authorization: Bearer ключ-ключ-ключ".encode()],
    [b"Authorization: Bearer\t" + LOAD_SECRET.encode()],
    [b"Authorization: Bearer", b" " + LOAD_SECRET.encode()],  # obsolete line folding
    [b"Authorization : Bearer " + LOAD_SECRET.encode()],
    [b"X-Authorization: Bearer " + LOAD_SECRET.encode()],
    [b"Authorization: Bearer " + b"a" * 20000],
    [b"Authorization: Basic " + base64.b64encode(LOAD_SECRET.encode() + b":")],
]


def test_on_the_wire_repeated_odd_and_oversized_headers_never_get_in(served):
    service, database = served
    assert raw_get(service.port, [RIGHT]) == 200  # the one header that gets in
    before = wire_counts(database)
    statuses = Counter()
    for lines in WIRE_CASES:
        status = raw_get(service.port, lines)
        statuses[status] += 1
        assert status in (400, 401, 431), lines
    for path in (f"{ROUTES[1]}?token={LOAD_SECRET}", f"{ROUTES[0]}?secret={LOAD_SECRET}"):
        assert raw_get(service.port, [], path) == 401
    figures.update({f"wire {k}": n for k, n in statuses.items()})
    assert wire_counts(database) == before


@given(value=st.binary(max_size=100).filter(lambda b: b"\r" not in b and b"\n" not in b))
@FUZZ
def test_on_the_wire_arbitrary_header_bytes_never_get_in(served, value):
    service, database = served
    for line in (
        b"Authorization: " + value,
        RIGHT + value,
        b"Authorization: " + value + RIGHT[15:],
    ):
        before = wire_counts(database)
        status = raw_get(service.port, [line])
        figures[f"wire bytes {status}"] += 1
        # Spaces and tabs around a field value are not part of it (RFC 9110, 5.5).
        if line.split(b":", 1)[1].strip(b" \t") != RIGHT.split(b": ", 1)[1]:
            assert status in (400, 401, 431), line
            assert wire_counts(database) == before


def wire_counts(database):
    with psycopg.connect(database) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM credits.{t}").fetchone()[0] for t in TABLES}
