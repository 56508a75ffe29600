"""Fixtures: a real PostgreSQL, a fresh database per test cloned from a schema template."""

import functools
import os
from datetime import timezone

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from app import create_app
from credits import config, db
from credits.cli import cli
from testing import SECRET, seeders
from testing.databases import create_template, drop_database, embedded_server, scratch_database
from testing.invariant import invariant_violations


@pytest.fixture(scope="session")
def server_url():
    """TEST_DATABASE_URL when set, else an embedded PostgreSQL started for this session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with embedded_server() as url:
        yield url


@pytest.fixture(scope="session")
def template_name(server_url):
    """A database with the schema applied once, cloned by every test."""
    name = create_template(server_url)
    yield name
    drop_database(server_url, name)


@pytest.fixture
def database_url(request, server_url, template_name):
    """A fresh database for this test; afterwards every user's balance must still add up."""
    with scratch_database(server_url, "credits_test", template_name) as url:
        yield url
        if not request.node.get_closest_marker("breaks_invariant"):
            assert_invariant(url)


def assert_invariant(url):
    """balance = sum of ledger = sum of active remaining, for every user."""
    rows, count = invariant_violations(url)
    assert count == 0, f"invariant broken for: {rows}"


@pytest.fixture
def test_config(database_url):
    return {"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "CREDITS_DB_TIMEOUT": "2"}


@pytest.fixture
def make_app(test_config):
    """Create the app with settings on top of the test's; its pools close after the test."""
    apps = []

    def make(**overrides):
        apps.append(create_app({**test_config, **overrides}))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["credits"]["pool"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def settings(test_config):
    return config.Settings.from_mapping(test_config)


@pytest.fixture
def pool(settings):
    pool = db.open_pool(settings, max_size=8)
    yield pool
    pool.close()


@pytest.fixture
def sql_run(database_url):
    """Run SQL on the test database outside the service, as the host app would."""
    conn = psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row)
    conn.execute("SET TIME ZONE 'UTC'")  # timestamps written without an offset are UTC

    def run(statement, params=None):
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else None

    yield run
    conn.close()


@pytest.fixture
def now(sql_run):
    """The service's clock, the database's (credits.db.now), as the test starts: what a test
    that runs anything "today" takes its dates from, never its own clock (testing/clock.py)."""
    return sql_run("SELECT now() AS now")[0]["now"].astimezone(timezone.utc)


@pytest.fixture
def today(now):
    """The service's UTC date, by the database's clock."""
    return now.date()


@pytest.fixture
def add_plan(sql_run):
    return functools.partial(seeders.add_plan, sql_run)


@pytest.fixture
def subscribe(sql_run):
    """Add a subscription; started_at and ends_at take ISO timestamps (UTC when no offset)."""

    return functools.partial(seeders.add_subscription, sql_run)


@pytest.fixture
def run_cli(database_url):
    """Run `python -m credits ...` in-process on the test database."""
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, list(args), env={"DATABASE_URL": database_url})

    return run


@pytest.fixture
def refuse_ledger_entries(sql_run):
    """Make the ledger refuse one user's entries, as a failing write would; undo() ends it."""

    class Refusal:
        def __call__(self, user_id):
            sql_run(
                sql.SQL(
                    """
                    CREATE FUNCTION credits.refuse_entries() RETURNS trigger
                    LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.user_id = {user} THEN
                            RAISE EXCEPTION 'ledger refused %', NEW.user_id;
                        END IF;
                        RETURN NEW;
                    END $$;
                    CREATE TRIGGER refuse_entries BEFORE INSERT ON credits.transactions
                        FOR EACH ROW EXECUTE FUNCTION credits.refuse_entries();
                    """
                ).format(user=sql.Literal(user_id))
            )

        def undo(self):
            sql_run("DROP TRIGGER refuse_entries ON credits.transactions")

    return Refusal()


@pytest.fixture
def lose_deadlocks(sql_run):
    """Make the first `times` ledger entries of a type fail as a deadlock victim does.

    credits.lost_deadlocks counts the tries: nextval is not undone by the rollback.
    """

    def arm(entry_type, times):
        sql_run("CREATE SEQUENCE credits.lost_deadlocks")
        sql_run(
            f"""
            CREATE FUNCTION credits.lose_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.type = {entry_type!r}
                   AND nextval('credits.lost_deadlocks') <= {int(times)} THEN
                    RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER lose_deadlock BEFORE INSERT ON credits.transactions
                FOR EACH ROW EXECUTE FUNCTION credits.lose_deadlock();
            """
        )

    return arm


@pytest.fixture
def benchmark_report(server_url, tmp_path):
    """Run a benchmark module's command on the test server, writing its section into a report
    between the module's markers; answers the report's text (old section replaced, rest kept)."""

    def run(bench, *args):
        report = tmp_path / "PERFORMANCE.md"
        report.write_text(f"# Before\n\n{bench.BEGIN}\nold\n{bench.END}\n\n# After\n")
        command = [*args, "--server", server_url, "--write", str(report)]
        result = CliRunner().invoke(bench.main, command)
        assert result.exit_code == 0, result.output
        text = report.read_text()
        assert text.startswith("# Before\n") and text.endswith("# After\n") and "old" not in text
        return text

    return run
