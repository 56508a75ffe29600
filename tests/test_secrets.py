"""The secret: rotated without downtime, compared in constant time, never written out."""

import ast
import hmac
import logging
from pathlib import Path

import pytest

from app import create_app
from credits import config, jobs
from credits.web import auth
from testing import SECRET

NEXT_SECRET = "next-secret-fedcba9876543210"
ROUTE = "/api/jobs/credits/expire"


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def rotating(make_app):
    """The service while the callers move from SECRET to NEXT_SECRET."""
    return make_app(CRON_SECRET=SECRET, CRON_SECRET_NEXT=f" {NEXT_SECRET}\n").test_client()


def test_during_rotation_the_current_and_the_next_secret_are_both_accepted(make_app):
    client = rotating(make_app)
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
    client = rotating(make_app)
    assert client.get(ROUTE, headers={"Authorization": header}).status_code == 401
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


def test_after_rotation_the_old_secret_gets_401(make_app):
    client = make_app(CRON_SECRET=NEXT_SECRET).test_client()
    assert client.get(ROUTE, headers=bearer(SECRET)).status_code == 401
    assert client.get(ROUTE, headers=bearer(NEXT_SECRET)).status_code == 200


@pytest.mark.parametrize(
    "overrides, message",
    [
        # The old "current,next" form: Vercel would send it whole and be refused every call.
        ({"CRON_SECRET": f"{SECRET},{NEXT_SECRET}"}, "put the new secret in CRON_SECRET_NEXT"),
        ({"CRON_SECRET": f"{SECRET},"}, "holds a comma"),
        ({"CRON_SECRET": f",{SECRET}"}, "holds a comma"),
        ({"CRON_SECRET_NEXT": "short-next"}, "CRON_SECRET_NEXT must be at least 16 characters"),
        ({"CRON_SECRET": "short-current"}, "CRON_SECRET must be at least 16 characters"),
    ],
)
def test_a_wrong_secret_stops_the_service_and_the_error_does_not_show_it(
    test_config, overrides, message
):
    with pytest.raises(config.ConfigError, match=message) as raised:
        create_app({**test_config, **overrides})
    assert "CRON_SECRET" in str(raised.value)
    for value in overrides.values():
        for part in value.split(","):
            if part:
                assert part not in str(raised.value)


def test_every_accepted_secret_is_compared_in_constant_time_on_every_request(make_app, monkeypatch):
    client = rotating(make_app)
    compared = []
    real_compare_digest = hmac.compare_digest

    def compare_digest(a, b):
        compared.append(b)
        return real_compare_digest(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare_digest)
    for header in (bearer(SECRET), bearer(NEXT_SECRET), bearer("x" * 30)):
        compared.clear()
        client.get(ROUTE, headers=header)
        # Both secrets every time: the first match does not cut the work short.
        assert sorted(compared) == sorted(
            [f"Bearer {SECRET}".encode(), f"Bearer {NEXT_SECRET}".encode()]
        )


def test_the_secret_never_appears_in_logs_or_bodies(make_app, caplog, capsys, sql_run):
    caplog.set_level(logging.DEBUG)
    client = rotating(make_app)
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
    sql_run("ALTER TABLE credits.job_progress RENAME TO job_progress_moved")
    try:
        response = client.get("/api/jobs/credits/grant", headers=bearer(SECRET))
    finally:
        sql_run("ALTER TABLE credits.job_progress_moved RENAME TO job_progress")
    assert response.status_code == 500
    bodies.append(response.get_data(as_text=True))
    written = " ".join(bodies) + caplog.text + "".join(capsys.readouterr())
    written += " ".join(str(r) for r in sql_run("SELECT error, results FROM credits.job_runs"))
    assert "internal error" in written and "Unauthorized" in written
    for secret in (SECRET, NEXT_SECRET):
        assert secret not in written


ROOT = Path(__file__).resolve().parent.parent


def statements_run_by_the_service():
    """Every execute/executemany call in app.py and credits/, with where it is."""
    for path in [ROOT / "app.py", *sorted((ROOT / "credits").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "execute",
                "executemany",
            ):
                yield f"{path.name}:{node.lineno}", node


def test_every_statement_is_a_named_sql_file_and_every_value_a_bound_parameter():
    calls = list(statements_run_by_the_service())
    assert len(calls) >= 15  # the scan does find the service's statements
    for where, call in calls:
        statement = call.args[0]
        if ast.unparse(statement) in ("migration.sql", "functions.sql"):
            continue  # the text of a file of sql/migrations or sql/functions (credits/schema.py)
        # queries["name"]: the text of sql/name.sql, never built from strings at run time.
        assert isinstance(statement, ast.Subscript), where
        assert isinstance(statement.value, ast.Name) and statement.value.id == "queries", where
        if isinstance(statement.slice, ast.Attribute):
            # queries[job.next_chunk]: a statement each Job names (jobs.Grant, jobs.Expire).
            names = [getattr(job, statement.slice.attr) for job in (jobs.Grant, jobs.Expire)]
        else:
            assert isinstance(statement.slice, ast.Constant), where
            names = [statement.slice.value]
        for name in names:
            assert (ROOT / "sql" / f"{name}.sql").exists(), where
    for path in (ROOT / "sql").glob("*.sql"):
        text = path.read_text()
        # Values come in as %(name)s parameters; no statement builds SQL from text, except the
        # DBA's role template, which quotes its role name as an identifier (%I).
        if path.name != "roles.sql":
            assert "EXECUTE" not in text.upper().replace("EXECUTE FUNCTION", ""), path.name
            assert "format(" not in text, path.name
        assert "'%(" not in text and '"%(' not in text, path.name  # a parameter inside quotes
    roles = (ROOT / "sql" / "roles.sql").read_text()
    assert "%L" not in roles and "%s'" not in roles
