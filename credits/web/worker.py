"""gunicorn's threaded worker, bounded against slow clients (gunicorn.conf.py's worker_class).

A silent new connection waits in the worker's poller, holding no thread; a client has
CLIENT_IO_TIMEOUT for each read or write and REQUEST_DEADLINE for its whole request, then is
closed unanswered. It overrides gthread's TConn, ThreadWorker and SocketUnreader methods of
the gunicorn version pinned in requirements/production.txt (tests/test_worker.py holds them
to it).
"""

import math
import time
from typing import Any

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

# Seconds a client may stay silent while it sends a request or reads the answer (each read or
# write on its socket): a half-sent request holds a thread this long at most.
CLIENT_IO_TIMEOUT = 10
# Seconds a client has to send a whole request (its head and its small body, at most
# credits/web/auth.py's MAX_BODY_BYTES) from when a thread starts reading it; then the
# connection is closed unanswered. It bounds what the per-read timeout cannot: a client
# sending a byte every few seconds.
REQUEST_DEADLINE = 10


class BoundedConnection(gthread.TConn):  # type: ignore[misc]  # gunicorn is untyped
    """A client connection that waits for its request in the poller, and times out its I/O."""

    deadline = math.inf  # when the request being read must have arrived (time.monotonic())
    timed_out = False

    def wait_for_data(self, timeout: float | None) -> bool:
        """Hand a silent new connection to the poller at once instead of holding a thread."""
        ready: bool = super().wait_for_data(0)
        return ready

    def start_request(self) -> None:
        """Give the request a thread is about to read its REQUEST_DEADLINE."""
        self.deadline = time.monotonic() + REQUEST_DEADLINE

    def init(self) -> None:
        """Set up the parser as gunicorn does, reading through a DeadlineUnreader; bound I/O."""
        first = not self.initialized
        super().init()
        self.sock.settimeout(CLIENT_IO_TIMEOUT)
        if first:
            self.parser.unreader = DeadlineUnreader(self)

    def close(self, graceful: bool = False) -> None:
        """Close as gunicorn does, at once for a client that ran out of time.

        A graceful close lingers up to 2 s reading what the client still sends, in the
        worker's main loop: a slow client would hold it that long.
        """
        super().close(graceful and not self.timed_out)


class DeadlineUnreader(SocketUnreader):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's socket reader, which gives up when the connection's request is out of time."""

    def __init__(self, conn: BoundedConnection) -> None:
        super().__init__(conn.sock)
        self.conn = conn

    def chunk(self, size_hint: int | None = None) -> bytes:
        """Read as gunicorn does, waiting no longer than the request has left."""
        left = self.conn.deadline - time.monotonic()
        io_timeout = self.sock.gettimeout()  # CLIENT_IO_TIMEOUT, or less while gunicorn drains
        try:
            if left <= 0:
                raise TimeoutError("request not received in time")
            self.sock.settimeout(min(io_timeout, left))
            data: bytes = super().chunk(size_hint)
            return data
        except TimeoutError:
            self.conn.timed_out = True
            raise
        finally:
            self.sock.settimeout(io_timeout)


class Worker(gthread.ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's threaded worker, whose connections are BoundedConnections."""

    def accept(self, listener: Any) -> None:
        """Accept a connection as gthread does, as a BoundedConnection."""
        try:
            client_sock, client_addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another worker took it, or the client left first
        self.nr_conns += 1
        conn = BoundedConnection(self.cfg, client_sock, client_addr, listener.getsockname())
        self.enqueue_req(conn)

    def handle(self, conn: BoundedConnection) -> Any:
        """Read and answer one request of the connection (gthread's unit of work), in time."""
        conn.start_request()
        return super().handle(conn)

    def handle_request(self, req: Any, conn: BoundedConnection) -> Any:
        """Answer a request, then stop its clock: gunicorn bounds the drain of a body left unread.

        Past the deadline, that drain would fail, and the answer be cut off by a hard close.
        """
        try:
            return super().handle_request(req, conn)
        finally:
            conn.deadline = math.inf
