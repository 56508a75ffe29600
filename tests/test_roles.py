"""The service as the least-privileged role of sql/roles.sql: it works, and it can do no more."""

import subprocess
import uuid
from datetime import date, datetime, timezone

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app import create_app
from credits import config, db, jobs, ledger
from credits.cli import cli
from credits.db import SQL_DIR
from testing import SECRET
from testing.databases import logged_in_as

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
    with logged_in_as(server_url, database_url, role) as url:
        yield url


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

        order_1 = ledger.SpendRequest("alice", "order-1", amount=120, at=MARCH_20)
        assert ledger.spend(role_pool, order_1)["balance"] == 30
        assert ledger.spend(role_pool, order_1)["replayed"]
        with pytest.raises(ledger.InsufficientCredits):
            ledger.spend(role_pool, ledger.SpendRequest("alice", "order-2", amount=31, at=MARCH_20))
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
            jobs.grant(role_pool, settings, date(2026, 3, 15))
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
    jobs.grant(pool, settings, date(2026, 3, 15))
    before = sql_run("SELECT * FROM credits.transactions ORDER BY id")
    with psycopg.connect(role_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert sql_run("SELECT * FROM credits.transactions ORDER BY id") == before


def test_the_least_privileged_role_cannot_apply_a_migration(role_config, sql_run):
    sql_run("DELETE FROM credits.schema_migrations")  # as if the first were new
    pool = db.open_pool(
        config.Settings.from_mapping({**role_config, "CREDITS_APPLY_SCHEMA": "true"})
    )
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.prepare(pool)
    finally:
        pool.close()


@pytest.mark.parametrize(
    "schema",
    [
        "DROP SCHEMA credits CASCADE",
        # An earlier release's: no migrations recorded, the batches' reference unique on its own.
        "DROP TABLE credits.schema_migrations; DROP INDEX credits.batches_reference_key; "
        "ALTER TABLE credits.batches ADD CONSTRAINT batches_reference_id_key UNIQUE (reference_id)",
    ],
    ids=["missing", "out of date"],
)
def test_without_the_schema_a_service_told_not_to_apply_it_answers_503_until_it_is_applied(
    make_app, test_config, sql_run, auth, caplog, schema
):
    sql_run(schema)
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


@pytest.fixture
def app_role_url(server_url, database_url):
    """A connection URL as the app role of sql/roles.sql, and nothing else granted to it."""
    role = f"credits_app_{uuid.uuid4().hex[:8]}"
    service = f"credits_service_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('credits.app_role', %s, false)", (role,))
        conn.execute("SELECT set_config('credits.service_role', %s, false)", (service,))
        conn.execute(db.queries["roles"])
        conn.execute(db.queries["roles"])
    with logged_in_as(server_url, database_url, role, service) as url:
        yield url


@pytest.fixture
def app_catalog(sql_run):
    sql_run("INSERT INTO credits.packages VALUES ('starter', 500, 50, 365)")
    sql_run("INSERT INTO credits.services VALUES ('chat', 2)")
    sql_run("INSERT INTO credits.registration VALUES (true, 25, 30)")


def test_the_app_role_calls_every_function_of_the_interface(app_role_url, app_catalog, sql_run):
    with psycopg.connect(app_role_url, autocommit=True) as app:

        def call(statement):
            return app.execute(f"SELECT {statement}").fetchone()[0]

        assert call("credits.grant_registration_bonus('alice')")["balance"] == 25
        assert call("credits.can_buy_package('alice', 'starter')")["allowed"] is True
        assert call("credits.buy_package('alice', 'starter', 'pay-1')")["balance"] == 575
        assert call("credits.grant_credits('alice', 5, 'promotion', 'promo-1')")["balance"] == 580
        assert call("credits.spend_service('alice', 'chat', 5, 'ai-1')")["balance"] == 570
        assert call("credits.spend('alice', 10, 'ai-2')")["balance"] == 560
        assert call("credits.reverse_spend('alice', 'ai-2')")["balance"] == 570
        assert call("credits.void_grant('pay-1')")["balance"] == 20
        assert call("credits.account('alice')")["spendable"] == 20
        page = app.execute("SELECT * FROM credits.statement('alice', 100)").fetchall()
        assert [entry[2] for entry in page] == [
            "void",
            "reverse",
            "consume",
            "consume",
            "grant",
            "grant",
            "grant",
        ]
        # With metadata on the ledger entries, e.g. who reversed or voided and why.
        call("credits.spend('alice', 3, 'ai-3')")
        assert call("""credits.reverse_spend('alice', 'ai-3', '{"by": "ann"}')""")["returned"] == 3
        assert call("""credits.void_grant('promo-1', '{"by": "ann"}')""")["voided"] == 5
        written = app.execute("SELECT * FROM credits.statement('alice', 2)").fetchall()
        assert [(entry[2], entry[7]) for entry in written] == [
            ("void", {"by": "ann"}),
            ("reverse", {"by": "ann"}),
        ]
    # The invariant is checked after every test (tests/conftest.py).


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM credits.balances",
        "SELECT * FROM credits.transactions",
        "SELECT * FROM credits.batches",
        "SELECT * FROM credits.plans",
        "SELECT * FROM credits.packages",
        "INSERT INTO credits.balances VALUES ('mallory', 1000000)",
        "UPDATE credits.balances SET balance = 1000000",
        "INSERT INTO credits.services VALUES ('free', 1)",
        "UPDATE credits.limits SET max_balance = NULL",
        # The clock is the database's: spending a batch past its date as of a past moment,
        # and the helpers the functions share, are not the app's to call.
        "SELECT credits.spend_at('2020-01-01', 'alice', 5, NULL, NULL, 'r')",
        "SELECT credits.grant_credits_at(now(), 'alice', 5, 'bonus', 'r')",
        "SELECT credits.grant_batch('alice', 5, 'bonus', 'r', NULL, NULL,"
        " capped => false, strict_replay => true)",
        "SELECT credits.account_at(now(), 'alice')",
        "SELECT credits.reverse_spend_at(now(), 'alice', 'r', NULL)",
        "CREATE FUNCTION credits.spend(text) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
def test_the_app_role_reads_and_writes_no_table_and_sets_no_clock(
    app_role_url, app_catalog, sql_run, statement
):
    sql_run("SELECT credits.grant_credits('alice', 5, 'promotion', 'promo-1')")
    before = sql_run("SELECT * FROM credits.transactions ORDER BY id")
    with psycopg.connect(app_role_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert sql_run("SELECT * FROM credits.transactions ORDER BY id") == before


def test_no_role_may_call_the_interface_unless_granted(server_url, database_url, sql_run):
    role = f"credits_nobody_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        sql_run(sql.SQL("GRANT USAGE ON SCHEMA credits TO {}").format(sql.Identifier(role)))
        with psycopg.connect(make_conninfo(database_url, user=role)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT credits.spend('alice', 1, 'r')")
    finally:
        sql_run(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_functions_running_as_the_owner_pin_their_search_path_and_are_not_public(sql_run):
    definers = sql_run(
        "SELECT p.proname, p.proconfig, "
        "       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, "
        "               acldefault('f', p.proowner))) a "
        "                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public "
        "  FROM pg_proc p WHERE p.pronamespace = 'credits'::regnamespace AND p.prosecdef"
    )
    assert len(definers) >= 17
    for function in definers:
        assert "search_path=pg_catalog, pg_temp" in function["proconfig"], function
        assert not function["public"], function


def test_the_app_role_writes_its_subscriptions_and_the_grant_job_grants_them(
    app_role_url, pool, settings, add_plan, sql_run
):
    add_plan("pro", 100, None)
    with psycopg.connect(app_role_url, autocommit=True) as app:
        app.execute(
            "INSERT INTO credits.subscriptions VALUES "
            "('s1', 'alice', 'pro', 'active', '2026-01-10'), "
            "('s2', 'bob', 'pro', 'active', '2026-01-10')"
        )
        app.execute(
            "INSERT INTO credits.subscriptions VALUES ('s1', 'alice', 'pro', 'active', "
            "'2026-01-10') ON CONFLICT (id) DO UPDATE SET status = excluded.status"
        )
        app.execute("UPDATE credits.subscriptions SET status = 'canceled' WHERE id = 's2'")
        app.execute("DELETE FROM credits.subscriptions WHERE status = 'canceled'")
    jobs.grant(pool, settings, date(2026, 3, 15))
    assert sql_run("SELECT user_id, balance FROM credits.balances") == [
        {"user_id": "alice", "balance": 100}
    ]


def psql(database_url, *settings):
    """sql/roles.sql run by psql as the README says: each -c "SET ...", then -f roles.sql."""
    command = ["psql", "-X", "-q", database_url]
    for setting in settings:
        command += ["-c", f"SET {setting}"]
    command += ["-f", str(SQL_DIR / "roles.sql")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_roles_sql_run_by_psql_without_a_role_stops_with_a_non_zero_status(database_url):
    done = psql(database_url)
    assert done.returncode != 0
    assert "name the role first" in done.stderr


def test_roles_sql_run_by_psql_with_only_the_app_role_makes_it(
    server_url, database_url, app_catalog
):
    role = f"credits_app_{uuid.uuid4().hex[:8]}"
    done = psql(database_url, f"credits.app_role = '{role}'")
    assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr
    with logged_in_as(server_url, database_url, role) as url:
        with psycopg.connect(url, autocommit=True) as app:
            answer = app.execute("SELECT credits.grant_registration_bonus('alice')").fetchone()
            assert answer[0]["balance"] == 25
