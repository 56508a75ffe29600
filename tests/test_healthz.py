"""/healthz answers in time whatever the database does, inside a platform's health-check timeout.

The tests run with CREDITS_DB_TIMEOUT's default (5 s), as a deployment does: before, /healthz
waited that long for a connection, as long as Render's health check waits for it.
"""

import socket
import threading
import time

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# Well under Render's 5 s, and above HEALTH_TIMEOUT with room for a slow machine.
BOUND = 4.0
# How long the stalled database holds what it is sent before it answers again.
STALL = 8.0


def timed_healthz(app):
    """(status, seconds) of one GET /healthz."""
    started = time.monotonic()
    status = app.test_client().get("/healthz").status_code
    return status, time.monotonic() - started


@pytest.fixture
def silent_database():
    """A DATABASE_URL whose server takes the connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    yield f"postgresql://postgres@127.0.0.1:{port}/credits"
    listener.close()


class StallingProxy:
    """A TCP proxy to the test database that can hold all traffic for STALL seconds."""

    def __init__(self, database_url):
        params = conninfo_to_dict(database_url)
        self.target = (params.get("host") or "127.0.0.1", int(params.get("port") or 5432))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = make_conninfo(database_url, host="127.0.0.1", port=self.port, hostaddr="")
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self):
        return self.listener.getsockname()[1]

    def _connect_target(self):
        host, port = self.target
        if host.startswith("/"):  # a Unix-domain socket directory (the embedded server)
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(f"{host}/.s.PGSQL.{port}")
            return upstream
        return socket.create_connection((host, port))

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = self._connect_target()
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        while True:
            try:
                data = source.recv(65536)
                # A stalled server: what arrived waits until it flows again.
                self.flowing.wait(STALL + 5)
                if not data:
                    return
                sink.sendall(data)
            except OSError:
                return

    def stall(self):
        """Hold everything for STALL seconds, then let it through."""
        self.flowing.clear()
        threading.Timer(STALL, self.flowing.set).start()

    def close(self):
        self.flowing.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def proxy(database_url):
    proxy = StallingProxy(database_url)
    yield proxy
    proxy.close()


def test_an_unreachable_database_is_a_503_within_the_bound(make_app, silent_database):
    app = make_app(DATABASE_URL=silent_database, CREDITS_DB_TIMEOUT="5")
    status, seconds = timed_healthz(app)
    assert status == 503
    assert seconds < BOUND


def test_a_database_that_stops_answering_is_a_503_within_the_bound(make_app, proxy):
    app = make_app(DATABASE_URL=proxy.url, CREDITS_DB_TIMEOUT="5")
    assert timed_healthz(app)[0] == 200  # the pool holds a connection through the proxy
    proxy.stall()
    status, seconds = timed_healthz(app)
    assert status == 503
    assert seconds < BOUND
    time.sleep(STALL)  # the stall ends: the service answers 200 again, nothing restarted
    deadline = time.monotonic() + 30
    while timed_healthz(app)[0] != 200:
        assert time.monotonic() < deadline, "the health check did not recover"
