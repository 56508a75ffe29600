"""The service as the least-privileged role of sql/roles.sql: it works, and it can do no more."""

import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import create_app
from credits import config, db, jobs, ledger
from credits.cli import cli
from testing import SECRET

MARCH_20 = datetime(2026, 3, 20, tzinfo=timezone.utc)


def apply_roles(owner_url, role):
    """Run sql/roles.sql as the DBA would, naming the role."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('credits.service_role', %s, false)", (role,))
        conn.execute(db.queries["roles"])


@pytest.fixture
def role_url(server_url, database_url):
    """A connection URL as a fresh role made by sql/roles.sql (run twice: safe to re-run)."""
    role = f"credits_service_{uuid.uuid4().hex[:8]}"
    apply_roles(database_url, role)
    apply_roles(database_url, role)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    yield make_conninfo(database_url, user=role)
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def role_config(role_url):
    return {
        "DATABASE_URL": role_url,
        "CRON_SECRET": SECRET,
        "CREDITS_DB_TIMEOUT": "2",
        "CREDITS_APPLY_SCHEMA": "false",
    }


@pytest.fixture
def role_pool(role_config):
    pool = db.open_pool(config.Settings.from_mapping(role_config))
    yield pool
    pool.close()


def test_jobs_and_spending_run_as_the_least_privileged_role(
    role_config, role_pool, sql_run, add_plan, subscribe, auth
):
    add_plan("pro", 100, 30)
    add_plan("addon", 50, None)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "addon", "2026-01-10")
    subscribe("s3", "bob", "gone", "2026-01-10")  # a missing plan is reported, not an error
    app = create_app(role_config)
    client = app.test_client()
    try:
        grant = "/api/jobs/credits/grant?date=2026-03-15"
        dry = client.get(grant + "&dryRun=true", headers=auth)
        assert dry.status_code == 200 and dry.get_json()["results"]["successful"] == 2
        response = client.get(grant, headers=auth)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["results"] == {
            "processed": 3,
            "successful": 2,
            "skipped": 0,
            "failed": 1,
        }
        assert client.get(grant, headers=auth).get_json()["results"]["skipped"] == 2

        assert ledger.consume(role_pool, "alice", 120, "order-1", at=MARCH_20).balance == 30
        assert ledger.consume(role_pool, "alice", 120, "order-1", at=MARCH_20).replayed
        with pytest.raises(ledger.InsufficientCredits):
            ledger.consume(role_pool, "alice", 31, "order-2", at=MARCH_20)
        assert ledger.balance(role_pool, "alice")[0] == 30

        response = client.get("/api/jobs/credits/expire", headers=auth)
        assert response.status_code == 200, response.get_json()
        assert ledger.balance(role_pool, "alice")[0] == 30  # the 100 were spent first
        assert ledger.find_invariant_violations(role_pool) == ([], 0)
    finally:
        app.extensions["credits"]["pool"].close()
    runs = sql_run("SELECT job, status FROM credits.job_runs ORDER BY started_at")
    assert runs == [
        {"job": "grant", "status": "succeeded"},
        {"job": "grant", "status": "succeeded"},
        {"job": "expire", "status": "succeeded"},
    ]


def test_a_refused_run_is_recorded_as_the_least_privileged_role(
    role_url, role_pool, sql_run, add_plan, subscribe, settings
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    with psycopg.connect(role_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('credits.job.grant', 0))")
        with pytest.raises(jobs.JobAlreadyRunning):
            jobs.grant(role_pool, settings, jobs.parse_run_date("2026-03-15"))
    [run] = sql_run("SELECT status, error FROM credits.job_runs")
    assert run["status"] == "failed" and "already in progress" in run["error"]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM credits.transactions",
        "UPDATE credits.transactions SET amount = amount * 2",
        "TRUNCATE credits.transactions",
        "DELETE FROM credits.batches",
        "UPDATE credits.batches SET amount = 1000000",
        "UPDATE credits.batches SET user_id = 'mallory'",
        "UPDATE credits.balances SET user_id = 'mallory'",
        "DELETE FROM credits.balances",
        "DELETE FROM credits.job_runs",
        "UPDATE credits.job_runs SET job = 'expire'",
        "INSERT INTO credits.plans VALUES ('free', 1000000, NULL)",
        "UPDATE credits.plans SET monthly_credits = 1000000",
        "UPDATE credits.subscriptions SET status = 'active'",
        "DELETE FROM credits.subscriptions",
        "DROP TABLE credits.transactions",
        "ALTER TABLE credits.balances DROP CONSTRAINT balances_balance_check",
        "CREATE TABLE credits.extra (id int)",
        "CREATE TABLE public.extra (id int)",
        "CREATE OR REPLACE FUNCTION credits.due_day(timestamptz, date) RETURNS date "
        "LANGUAGE sql AS 'SELECT current_date'",
        "DROP SCHEMA credits CASCADE",
        "CREATE SCHEMA elsewhere",
    ],
)
def test_the_least_privileged_role_cannot_rewrite_remove_or_create_anything(
    role_url, pool, settings, sql_run, add_plan, subscribe, statement
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, jobs.parse_run_date("2026-03-15"))
    before = sql_run("SELECT * FROM credits.transactions ORDER BY id")
    with psycopg.connect(role_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert sql_run("SELECT * FROM credits.transactions ORDER BY id") == before


def test_the_least_privileged_role_cannot_apply_the_schema(role_config):
    pool = db.open_pool(
        config.Settings.from_mapping({**role_config, "CREDITS_APPLY_SCHEMA": "true"})
    )
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.prepare(pool)
    finally:
        pool.close()


def test_without_the_schema_a_service_told_not_to_apply_it_answers_503_until_it_is_applied(
    make_app, test_config, sql_run, auth, caplog
):
    sql_run("DROP SCHEMA credits CASCADE")
    client = make_app(CREDITS_APPLY_SCHEMA="false").test_client()
    assert client.get("/healthz").status_code == 503
    response = client.get("/api/jobs/credits/grant", headers=auth)
    assert response.status_code == 503
    assert response.get_json()["error"] == "database unavailable"
    assert "init-db" in caplog.text
    result = CliRunner().invoke(
        cli,
        ["init-db"],
        env={"DATABASE_URL": test_config["DATABASE_URL"], "CREDITS_APPLY_SCHEMA": "false"},
    )
    assert result.exit_code == 0, result.output
    # The same service, not restarted, finds the schema at its next request.
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/jobs/credits/grant", headers=auth).status_code == 200


@pytest.mark.parametrize("value", ["yes", "0", ""])
def test_apply_schema_setting_must_be_true_or_false(test_config, value):
    with pytest.raises(config.ConfigError, match="CREDITS_APPLY_SCHEMA"):
        create_app({**test_config, "CREDITS_APPLY_SCHEMA": value})
