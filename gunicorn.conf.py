"""gunicorn settings, read by `gunicorn wsgi:app` from this folder (locally and in the Procfile).

Binds 127.0.0.1:8000, or 0.0.0.0:$PORT where the platform sets PORT (gunicorn's own default).
"""

import logging
import math
import os
import time
from pathlib import Path

from dotenv import load_dotenv
from gunicorn import glogging
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

import credits
from credits import embedded
from credits.config import ConfigError, Settings, cron_secrets, value_of, worker_timeout

embedded_server = None  # the master's handle on the embedded PostgreSQL, when it runs one

workers = value_of("WEB_CONCURRENCY", os.environ)
# Above the longest time budget a request may ask for (credits.config): a run stops starting
# chunks when its budget is spent, well before its worker would be killed.
timeout = worker_timeout(os.environ)
# Threads, so /healthz and a refused call are answered while a job runs for its whole budget.
threads = value_of("GUNICORN_THREADS", os.environ)
# Seconds a connection may stay open without sending a request (kept alive, or idle from the
# start) before it is closed; it waits in the worker's poller meanwhile, holding no thread.
keepalive = 5
# Seconds a client may stay silent while it sends a request or reads the answer (each read or
# write on its socket): a half-sent request holds a thread this long at most.
CLIENT_IO_TIMEOUT = 10
# Seconds a client has to send a whole request (its head and its small body, app.MAX_BODY_BYTES)
# from when a thread starts reading it; then the connection is closed unanswered. It bounds
# what the per-read timeout cannot: a client sending a byte every few seconds.
REQUEST_DEADLINE = 10
accesslog = "-"
# gunicorn's default line, less the query string (%(r)s, %(q)s) and the Basic-auth user name
# (%(u)s): a caller who puts the secret there must not have it written to the log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


class BoundedConnection(gthread.TConn):
    """A client connection that waits for its request in the poller, and times out its I/O."""

    deadline = math.inf  # when the request being read must have arrived (time.monotonic())
    timed_out = False

    def wait_for_data(self, timeout):
        """Hand a silent new connection to the poller at once instead of holding a thread."""
        return super().wait_for_data(0)

    def start_request(self):
        """Give the request a thread is about to read its REQUEST_DEADLINE."""
        self.deadline = time.monotonic() + REQUEST_DEADLINE

    def init(self):
        """Set up the parser as gunicorn does, reading through a DeadlineUnreader; bound I/O."""
        first = not self.initialized
        super().init()
        self.sock.settimeout(CLIENT_IO_TIMEOUT)
        if first:
            self.parser.unreader = DeadlineUnreader(self)

    def close(self, graceful=False):
        """Close as gunicorn does, at once for a client that ran out of time.

        A graceful close lingers up to 2 s reading what the client still sends, in the
        worker's main loop: a slow client would hold it that long.
        """
        super().close(graceful and not self.timed_out)


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, which gives up when the connection's request is out of time."""

    def __init__(self, conn):
        super().__init__(conn.sock)
        self.conn = conn

    def chunk(self, size_hint=None):
        """Read as gunicorn does, waiting no longer than the request has left."""
        left = self.conn.deadline - time.monotonic()
        io_timeout = self.sock.gettimeout()  # CLIENT_IO_TIMEOUT, or less while gunicorn drains
        try:
            if left <= 0:
                raise TimeoutError("request not received in time")
            self.sock.settimeout(min(io_timeout, left))
            return super().chunk(size_hint)
        except TimeoutError:
            self.conn.timed_out = True
            raise
        finally:
            self.sock.settimeout(io_timeout)


class Worker(gthread.ThreadWorker):
    """gunicorn's threaded worker, whose connections are BoundedConnections."""

    def accept(self, listener):
        """Accept a connection as gthread does, as a BoundedConnection."""
        try:
            client_sock, client_addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client left first
        self.nr_conns += 1
        conn = BoundedConnection(self.cfg, client_sock, client_addr, listener.getsockname())
        self.enqueue_req(conn)

    def handle(self, conn):
        """Read and answer one request of the connection (gthread's unit of work), in time."""
        conn.start_request()
        return super().handle(conn)

    def handle_request(self, req, conn):
        """Answer a request, then stop its clock: gunicorn bounds the drain of a body left unread.

        Past the deadline, that drain would fail, and the answer be cut off by a hard close.
        """
        try:
            return super().handle_request(req, conn)
        finally:
            conn.deadline = math.inf


class RedactingFilter(logging.Filter):
    """Keeps the request line, query string and header values out of gunicorn's error log.

    gunicorn quotes them when it refuses a malformed request, and in the details of errors;
    the secret may be in any of them.
    """

    def filter(self, record):
        message = record.getMessage()
        if message.startswith("Invalid request from ip="):
            # "Invalid request from ip=1.2.3.4: Invalid HTTP request line: 'GET /?token=...'"
            origin, _, error = message.partition(": ")
            record.msg, record.args = "%s: %s (not logged)", (origin, _kind(error))
        elif message.startswith("Error handling request") and record.args:
            record.args = tuple(_without_query(arg) for arg in record.args)
        else:
            record.args = tuple(
                type(arg).__name__ if isinstance(arg, BaseException) else arg
                for arg in record.args or ()
            )
        if record.exc_info and record.exc_info[1] is not None:
            # A parser error's text quotes what it could not parse, and a client's time-out
            # needs no traceback: the type says enough.
            exc = record.exc_info[1]
            if isinstance(exc, TimeoutError) or type(exc).__module__.startswith("gunicorn.http"):
                record.exc_info = None
                record.msg = f"{record.msg} ({type(exc).__name__})"
        return True


def _kind(error):
    """What gunicorn found wrong, without what it quotes: the text before a colon or quote."""
    return error.split(":", 1)[0].split("'", 1)[0].split('"', 1)[0].strip()


def _without_query(value):
    """A request URI (or any other value) cut at its query string."""
    return value.split("?", 1)[0] if isinstance(value, str) else value


REDACT = RedactingFilter()


class Logger(glogging.Logger):
    """gunicorn's logger, whose error log goes through RedactingFilter."""

    def setup(self, cfg):
        """Set the logs up as gunicorn does, then filter the error log (once, on reloads too)."""
        super().setup(cfg)
        self.error_log.addFilter(REDACT)


worker_class = Worker
logger_class = Logger


def on_starting(server):
    """Start the embedded PostgreSQL (no DATABASE_URL) in the master, which outlives workers."""
    global embedded_server
    load_dotenv()  # as wsgi.py does in the workers: DATABASE_URL may come from .env
    _empty_metrics_folder()
    try:
        settings = Settings.from_mapping(os.environ)
        if settings.embedded:
            embedded_server = embedded.own(settings)
            if settings.cron_secret is None:
                _show_local_secret(settings)
    except ConfigError:
        return  # each worker says what is wrong, and the boot stops


def _empty_metrics_folder():
    """Start PROMETHEUS_MULTIPROC_DIR empty (made if missing): the counts of an earlier run's
    workers must not be added to this one's (docs/ENDPOINTS.md, "GET /metrics")."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for leftover in Path(folder).glob("*.db"):
            leftover.unlink()


def child_exit(server, worker):
    """Tell prometheus_client a worker is gone, in multiprocess mode (its counts are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _show_local_secret(settings):
    """Say where the local secret is and how to call with it: here, once, not in each worker."""
    cron_secrets(settings)  # creates it now, so the hint names a file that is there
    credits.configure_logging(settings.log_format)
    logging.getLogger("credits").info(
        "No CRON_SECRET set: using the local secret in %s. Try:\n"
        '  curl -H "Authorization: Bearer $(cat %s)" '
        "http://127.0.0.1:8000/api/jobs/credits/grant",
        settings.local_secret_file,
        settings.local_secret_file,
    )


def on_exit(server):
    """Stop the embedded PostgreSQL with the service, whatever happened to its workers."""
    if embedded_server is not None:
        embedded.release(embedded_server)
