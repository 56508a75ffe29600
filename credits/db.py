"""The database: where it is, the connection pool, the schema and the SQL statements."""

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from credits import embedded
from credits.config import Settings

logger = logging.getLogger("credits")

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# A transaction the server aborted to break a deadlock (or a serialization failure) was rolled
# back whole, so trying it again is safe: it is tried this many times in all, then reported.
ATTEMPTS = 3
ABORTED = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)

# A connection of the pool: autocommit, rows read as dicts.
Connection = psycopg.Connection[DictRow]
T = TypeVar("T")
R = TypeVar("R")  # a row, as a cursor's row factory makes it

# Every statement in sql/ (not its folders), by file name, read once, less the lines for psql
# alone (roles.sql's `\set ON_ERROR_STOP on`).
queries = {
    path.stem: "".join(
        line
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith("\\")
    )
    for path in SQL_DIR.glob("*.sql")
}


class DatabaseUnavailable(Exception):
    """The database cannot be reached; nothing was done."""


class SchemaMissing(Exception):
    """The service was told not to apply the schema, and it is not there."""


def database_url(settings: Settings) -> str | Callable[[], str]:
    """DATABASE_URL, or a function answering the embedded PostgreSQL's address (started first)."""
    if settings.database_url is not None:  # not embedded
        return settings.database_url
    embedded.pgserver()  # not installed: a setting error at startup, not at the first request
    return functools.partial(embedded.uri, settings)


# While a request waits for a connection, a new try to connect starts this often (seconds).
RETRY_EVERY = 0.5


class Pool(ConnectionPool[Connection]):
    """The service's connections; the first one had applies the schema (or checks it's there).

    Opening the pool never waits for the database, so a service (re)started during an outage
    comes up and answers 503 until the database is back. The schema is applied once per pool,
    on the first connection had, by one thread while the others wait; a failed try is tried
    again with the next connection. With CREDITS_APPLY_SCHEMA=false (a service running as a
    role that may not create or alter anything, see sql/roles.sql) it is only checked, and the
    schema's owner applies it with `init-db`.
    """

    def __init__(self, settings: Settings, max_size: int) -> None:
        super().__init__(
            database_url(settings),
            min_size=1,
            max_size=max_size,
            timeout=settings.db_timeout,
            # Autocommit: every transaction is an explicit `with conn.transaction()` block,
            # never one opened behind the code's back by a stray statement. A connection
            # attempt to an unreachable host gives up within the wait for a connection.
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "connect_timeout": max(2, math.ceil(settings.db_timeout)),
            },
            check=self._check_or_discard_all,
            # The pool tries to reconnect in the background with a growing back-off, and while
            # one try waits its turn no request starts another: after a long outage that wait
            # outlived the database's return. So a try is two attempts in a row, no back-off,
            # and a request waiting for a connection starts a new try every RETRY_EVERY
            # seconds (getconn below).
            reconnect_timeout=0,
            open=True,
            name="credits",
        )
        self.apply_schema = settings.apply_schema
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def getconn(self, timeout: float | None = None) -> Connection:
        """A connection within timeout (default CREDITS_DB_TIMEOUT), trying to connect meanwhile.

        The wait is cut in slices: each slice that finds the pool empty starts a try to
        connect, where one wait would have had at most the one try its start began.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return super().getconn(min(left, RETRY_EVERY))
            except PoolTimeout:
                if left <= RETRY_EVERY:
                    raise PoolTimeout(
                        f"couldn't get a connection after {timeout:.2f} sec"
                    ) from None

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Connection]:
        """A connection, with the schema applied (or checked) once it is first had."""
        with super().connection(timeout) as conn:
            if not self._schema_ready:
                self._prepare_schema(conn)
            yield conn

    def _prepare_schema(self, conn: Connection) -> None:
        """Apply (or check) the schema, once for the pool, while other threads wait."""
        from credits import schema  # built on this module's queries and connections

        with self._schema_lock:
            if self._schema_ready:
                return
            if self.apply_schema:
                schema.migrate(conn)
            elif not schema.is_current(conn):
                raise SchemaMissing(
                    "CREDITS_APPLY_SCHEMA is false but the credits schema is missing, out of "
                    "date or not usable by this role: apply it as its owner with "
                    "`python -m credits init-db`"
                )
            self._schema_ready = True

    def _check_or_discard_all(self, conn: Connection) -> None:
        """Check a connection before it is given out; a broken one means all idle ones are."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            # The server went away and came back (or not): the other idle connections are
            # broken too, and the pool would check them one by one with a growing pause
            # between each, long enough to refuse the request. Drop them all at once.
            self.check()
            raise


def open_pool(settings: Settings, max_size: int | None = None) -> Pool:
    """A pool on the service's database; it connects in the background and never waits here.

    By default the pool holds a job run's connections (one for the job's lock, one per
    stripe) and one more, so another request is not kept waiting by a run.
    """
    return Pool(settings, max_size or settings.parallel_chunks + 2)


def prepare(pool: Pool) -> None:
    """Apply (or check) the schema now instead of at the first request: what `init-db` does."""
    with connection(pool):
        pass


@contextmanager
def connection(pool: Pool, timeout: float | None = None) -> Iterator[Connection]:
    """A connection from the pool within timeout (default CREDITS_DB_TIMEOUT); a database that
    cannot be reached raises DatabaseUnavailable."""
    try:
        with pool.connection(timeout) as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        if not _is_unreachable(exc):
            raise
        raise DatabaseUnavailable(str(exc)) from exc


def _is_unreachable(exc: PoolTimeout | psycopg.OperationalError) -> bool:
    """True for a lost or refused connection, not for an error the server answered with."""
    if isinstance(exc, PoolTimeout):
        return True
    sqlstate = exc.sqlstate or ""
    # No SQLSTATE: the client lost the connection. Class 08: connection exceptions.
    # 57P01-57P03: the server was shut down, crashed or is starting.
    return not sqlstate or sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}


def now(pool: Pool) -> datetime:
    """The service's clock: the database's now(), which the SQL functions and the jobs use."""
    with connection(pool) as conn:
        return read_clock(conn)


def read_clock(conn: Connection) -> datetime:
    """The database's now() on an open connection (see sql/read_clock.sql)."""
    clock: datetime = one(conn.execute(queries["read_clock"]))["now"]
    return clock


def today(pool: Pool) -> date:
    """The service's UTC date, by the database's clock."""
    return now(pool).astimezone(timezone.utc).date()


def one(cursor: psycopg.Cursor[R]) -> R:
    """The row of a statement that always answers one (a count, a function's answer)."""
    row = cursor.fetchone()
    assert row is not None, "the statement answered no row"
    return row


def retry_aborted(transaction: Callable[[], T], what: str) -> T:
    """transaction(), tried again when the server aborted it, at most ATTEMPTS times in all."""
    for attempt in range(1, ATTEMPTS):
        try:
            return transaction()
        except ABORTED as exc:
            logger.warning("%s: %s, retrying (attempt %d)", what, type(exc).__name__, attempt + 1)
    return transaction()  # the last attempt: its error is reported


def release_lock(conn: Connection, unlock: Callable[[], object]) -> None:
    """Release a session lock (unlock: its advisory unlock on conn) in a transaction of its own;
    a connection that cannot is closed, never handed back to the pool holding the lock."""
    try:
        with conn.transaction():
            unlock()
    except psycopg.Error:
        conn.close()
