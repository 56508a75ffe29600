"""The slow-client worker (credits/web/worker.py) against the gunicorn version it is pinned to.

It overrides gthread's own methods, so a gunicorn upgrade that renames or reshapes one of them
fails here, before the slow-client guarantee (tests/test_served.py) quietly stops holding.
"""

import inspect
import re
import socket
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from credits.web import worker

ROOT = Path(__file__).resolve().parent.parent


def pinned(package):
    """The version requirements/production.txt pins package to."""
    text = (ROOT / "requirements" / "production.txt").read_text(encoding="utf-8")
    return re.search(rf"^{package}==(\S+)$", text, re.MULTILINE).group(1)


def test_the_installed_gunicorn_is_the_pinned_one():
    assert version("gunicorn") == pinned("gunicorn")


@pytest.mark.parametrize(
    "cls, method, parameters",
    [
        (gthread.TConn, "__init__", ["self", "cfg", "sock", "client", "server"]),
        (gthread.TConn, "wait_for_data", ["self", "timeout"]),
        (gthread.TConn, "init", ["self"]),
        (gthread.TConn, "close", ["self", "graceful"]),
        (gthread.ThreadWorker, "accept", ["self", "listener"]),
        (gthread.ThreadWorker, "enqueue_req", ["self", "conn"]),
        (gthread.ThreadWorker, "handle", ["self", "conn"]),
        (gthread.ThreadWorker, "handle_request", ["self", "req", "conn"]),
        (SocketUnreader, "__init__", ["self", "sock", "max_chunk"]),
        (SocketUnreader, "chunk", ["self", "size_hint"]),
    ],
)
def test_every_gunicorn_method_the_worker_overrides_or_calls_is_there(cls, method, parameters):
    assert list(inspect.signature(getattr(cls, method)).parameters) == parameters


@pytest.fixture
def connection():
    """A BoundedConnection on one end of a socket pair, set up as a worker thread sets it up."""
    server_end, client_end = socket.socketpair()
    conn = worker.BoundedConnection(Config(), server_end, ("127.0.0.1", 1), ("127.0.0.1", 2))
    conn.init()
    yield conn, client_end
    server_end.close()
    client_end.close()


def test_a_connection_reads_through_the_deadline_with_the_io_timeout(connection):
    conn, client = connection
    assert isinstance(conn.parser.unreader, worker.DeadlineUnreader)
    assert conn.sock.gettimeout() == worker.CLIENT_IO_TIMEOUT
    conn.start_request()
    client.sendall(b"GET /healthz HTTP/1.1\r\n")
    assert conn.parser.unreader.chunk() == b"GET /healthz HTTP/1.1\r\n"
    assert not conn.timed_out


def test_a_request_past_its_deadline_times_out_without_reading(connection):
    conn, client = connection
    conn.deadline = time.monotonic() - 1
    client.sendall(b"GET /healthz HTTP/1.1\r\n")
    with pytest.raises(TimeoutError):
        conn.parser.unreader.chunk()
    assert conn.timed_out
    assert conn.sock.gettimeout() == worker.CLIENT_IO_TIMEOUT  # put back for the next read


def test_a_silent_client_times_out_when_the_request_has_less_left_than_a_read(connection):
    conn, _ = connection
    conn.deadline = time.monotonic() + 0.2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.parser.unreader.chunk()
    assert time.monotonic() - started < 2 and conn.timed_out
