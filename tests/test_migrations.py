"""Migrations: a database of any supported release, upgraded, equals a fresh install."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from credits import config, db, events, schema
from testing.databases import migrate, scratch_database
from testing.dumps import client_program, schema_dump
from testing.invariant import invariant_violations

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Each earlier release an upgrade starts from: the oldest supported and the last before the
# migrations (their schema.sql, kept in tests/fixtures/), and the first with migrations, whose
# schema is its migrations 0001 and 0002 (files that never change: see the manifest test).
RELEASES = {"3541ea7": None, "3b8a209": None, "3a6b37e": 2}


def release_schema(release):
    """The SQL that makes a database of an earlier release, empty of data."""
    last_migration = RELEASES[release]
    if last_migration is None:
        return (FIXTURES / f"schema_{release}.sql").read_bytes()
    return b"\n".join(m.sql for m in schema.migrations() if m.version <= last_migration)


# A ledger that adds up: alice was granted 100 credits and spent 40 of them.
SEED = """
INSERT INTO credits.plans VALUES ('pro', 100, 30);
INSERT INTO credits.subscriptions VALUES ('s1', 'alice', 'pro', 'active', '2026-01-10', NULL);
INSERT INTO credits.batches (user_id, source, reference_id, grant_period, amount, remaining,
                             expires_at)
VALUES ('alice', 'subscription', 'subscription:s1:2026-01', '2026-01', 100, 60, '2099-01-01');
INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id)
VALUES ('alice', 1, 'grant', 100, 'subscription:s1:2026-01'),
       ('alice', 1, 'consume', -40, 'order-1');
INSERT INTO credits.balances (user_id, balance) VALUES ('alice', 60);
INSERT INTO credits.job_runs (id, job, status, run_date)
VALUES ('00000000-0000-0000-0000-000000000001', 'grant', 'succeeded', '2026-01-10');
"""


def run(database_url, statements):
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(statements)
        return cur.fetchall() if cur.description else None


def start_service(database_url):
    """What a service (or `init-db`) does at start when it may apply the schema."""
    pool = db.open_pool(config.Settings.from_mapping({"DATABASE_URL": database_url}), 1)
    try:
        db.prepare(pool)
    finally:
        pool.close()


def assert_refused_without_applying(database_url):
    """A service that may not apply the schema (CREDITS_APPLY_SCHEMA=false) refuses to start."""
    settings = config.Settings.from_mapping(
        {"DATABASE_URL": database_url, "CREDITS_APPLY_SCHEMA": "false"}
    )
    pool = db.open_pool(settings, 1)
    try:
        with pytest.raises(db.SchemaMissing, match="out of date"):
            db.prepare(pool)
    finally:
        pool.close()


@pytest.fixture
def fresh_install(server_url):
    """The schema dump of an empty database given the migrations."""
    with scratch_database(server_url, "credits_fresh") as url:
        migrate(url)
        yield schema_dump(url)


@pytest.fixture
def empty_url(server_url):
    with scratch_database(server_url, "credits_empty") as url:
        yield url


def test_the_tables_written_to_be_read_and_the_later_migrations_give_a_fresh_install(
    fresh_install, empty_url
):
    run(empty_url, (db.SQL_DIR / "schema" / "tables.sql").read_bytes())
    run(empty_url, "INSERT INTO credits.schema_migrations (version, name) VALUES (1, 'x')")
    migrate(empty_url)
    assert schema_dump(empty_url) == fresh_install


@pytest.mark.parametrize("release", RELEASES)
def test_a_database_of_an_earlier_release_upgraded_equals_a_fresh_install_and_verifies(
    release, fresh_install, empty_url
):
    run(empty_url, release_schema(release))
    run(empty_url, SEED)
    assert schema_dump(empty_url) != fresh_install
    start_service(empty_url)
    assert schema_dump(empty_url) == fresh_install
    assert invariant_violations(empty_url) == ([], 0)
    [spent] = run(empty_url, "SELECT credits.spend('alice', 10, 'order-2') AS answer")
    assert spent["answer"]["balance"] == 50
    assert invariant_violations(empty_url) == ([], 0)


def test_the_batches_announced_before_the_notice_horizon_are_not_announced_again(empty_url):
    """0010 replaces one notice row per batch by the last scan's horizon: a batch announced
    before it gets no second notice, one due that had none gets it from the next scan."""
    run(empty_url, b"\n".join(m.sql for m in schema.migrations() if m.version <= 9))
    run(
        empty_url,
        """
        INSERT INTO credits.notifications VALUES (true, 7, NULL);
        INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining, expires_at)
        VALUES ('alice', 'bonus', 'announced', 10, 10, now() + interval '3 days'),
               ('alice', 'bonus', 'due, not announced', 10, 10, now() + interval '2 days'),
               ('alice', 'bonus', 'later', 10, 10, now() + interval '20 days');
        INSERT INTO credits.batch_notices (batch_id) VALUES (1);
        """,
    )
    start_service(empty_url)
    assert run(empty_url, "SELECT to_regclass('credits.batch_notices') AS t") == [{"t": None}]

    def scan(days_on):
        with psycopg.connect(empty_url, row_factory=dict_row) as conn:
            at = conn.execute("SELECT now() + make_interval(days => %s) AS at", (days_on,))
            events.notice_expiring(conn, at.fetchone()["at"])
        announced = run(
            empty_url,
            "SELECT (payload->>'batch_id')::bigint AS batch FROM credits.events "
            "WHERE type = 'credits.expiring_soon' ORDER BY id",
        )
        return [row["batch"] for row in announced]

    assert scan(0) == [2]
    assert scan(14) == [2, 3]
    assert scan(15) == [2, 3]


def test_each_migration_records_itself_once(empty_url):
    migrate(empty_url)
    migrate(empty_url)  # nothing left to apply
    recorded = run(empty_url, db.queries["list_migrations"])
    assert [(row["version"], row["name"]) for row in recorded] == [
        (migration.version, migration.name) for migration in schema.migrations()
    ]


def test_an_applied_migration_file_never_changes():
    """A released migration is never edited: a change is a new file (and a new line here)."""
    manifest = dict(
        reversed(line.split()) for line in (FIXTURES / "migrations.sha256").read_text().splitlines()
    )
    assert {path.name for path in schema.MIGRATIONS_DIR.glob("*.sql")} == set(manifest)
    for name, digest in manifest.items():
        text = (schema.MIGRATIONS_DIR / name).read_bytes()
        assert hashlib.sha256(text).hexdigest() == digest, name


@pytest.fixture
def next_release(tmp_path, monkeypatch):
    """The migrations with one more file, as the next release would ship them."""
    for path in schema.MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path)
    (tmp_path / "9999_next_release.sql").write_text(
        "CREATE TABLE credits.next_release (id integer);\n"
        "INSERT INTO credits.schema_migrations (version, name) VALUES (9999, 'next_release');\n"
    )
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", tmp_path)


def test_a_service_that_may_not_apply_the_schema_refuses_one_with_a_migration_pending(
    next_release, database_url
):
    assert_refused_without_applying(database_url)
    start_service(database_url)
    assert run(database_url, "SELECT count(*) FROM credits.next_release") == [{"count": 0}]


def test_a_failed_migration_leaves_nothing_behind_and_the_ones_before_it_applied(
    next_release, empty_url, tmp_path
):
    (tmp_path / "9999_next_release.sql").write_text(
        "CREATE TABLE credits.next_release (id integer);\nSELECT 1 / 0;\n"
    )
    with pytest.raises(psycopg.errors.DivisionByZero):
        start_service(empty_url)
    assert run(empty_url, "SELECT to_regclass('credits.next_release') AS t") == [{"t": None}]
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        assert [migration.version for migration in schema.pending_migrations(conn)] == [9999]


def test_the_plain_psql_loop_of_database_md_installs_the_schema_and_can_run_again(
    fresh_install, empty_url
):
    docs = (ROOT / "docs" / "DATABASE.md").read_text(encoding="utf-8")
    loop = re.search(r"```sh\n( *for f in sql/migrations/.*?)```", docs, re.S)
    assert loop is not None, "docs/DATABASE.md shows the psql loop"
    psql_dir = str(Path(client_program(empty_url, "psql")).parent)
    env = {
        **os.environ,
        "DATABASE_URL": empty_url,
        "PATH": psql_dir + os.pathsep + os.environ["PATH"],
    }
    for _ in range(2):  # the second run finds every file applied
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", textwrap.dedent(loop[1])],
            cwd=ROOT,
            env=env,
            check=True,
        )
    assert schema_dump(empty_url) == fresh_install


def test_no_sql_file_outside_the_migrations_is_over_400_lines():
    long = {
        str(path.relative_to(db.SQL_DIR)): lines
        for path in db.SQL_DIR.rglob("*.sql")
        if schema.MIGRATIONS_DIR not in path.parents
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


@pytest.fixture
def changed_function(tmp_path, monkeypatch):
    """The function files with one function changed, as the next release would ship them."""
    for path in schema.FUNCTIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path)
    (tmp_path / "20_job_functions.sql").write_text(
        (schema.FUNCTIONS_DIR / "20_job_functions.sql").read_text(encoding="utf-8")
        + "\nCREATE OR REPLACE FUNCTION credits.next_release() RETURNS int LANGUAGE sql"
        + " AS $$ SELECT 1 $$;\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(schema, "FUNCTIONS_DIR", tmp_path)


def recorded_functions(database_url):
    return {
        row["file"]: row["applied_at"]
        for row in run(database_url, "TABLE credits.schema_functions")
    }


def test_a_changed_function_file_is_applied_again_and_only_it(database_url, changed_function):
    before = recorded_functions(database_url)
    assert set(before) == {path.name for path in schema.FUNCTIONS_DIR.glob("*.sql")}
    start_service(database_url)
    assert run(database_url, "SELECT credits.next_release() AS one") == [{"one": 1}]
    after = recorded_functions(database_url)
    assert {file for file in after if after[file] != before[file]} == {"20_job_functions.sql"}
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        assert schema.migrate(conn) == []  # up to date: only read


def test_a_service_that_may_not_apply_the_schema_refuses_a_changed_function_file(
    database_url, changed_function
):
    assert_refused_without_applying(database_url)


def test_the_functions_migration_for_a_host_tool_leaves_the_functions_current(
    fresh_install, empty_url, tmp_path
):
    """What a host's tool applies: the migrations' files, then the functions' file the CLI
    writes; the service then has nothing to apply."""
    for migration in schema.migrations():
        run(empty_url, migration.sql)
    written = tmp_path / "functions.sql"
    result = subprocess.run(
        [sys.executable, "-m", "credits", "functions-migration", str(written)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["files"] == [f.file for f in schema.function_files()]
    run(empty_url, written.read_bytes())
    run(empty_url, written.read_bytes())  # again: a later release's tool may apply it twice
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        assert schema.is_current(conn)
    assert schema_dump(empty_url) == fresh_install
