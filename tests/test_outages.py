"""Outages: the service stays up through them, answers 503 quickly, and recovers by itself.

The database goes away behind a TCP proxy the test cuts and restores (the shared server itself
is never stopped), or, for the embedded PostgreSQL, in a data folder of the test's own.
"""

import os
import signal
import socket
import threading
import time

import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from testing import SECRET
from testing.served import Served, call, free_port

GRANT = "/api/jobs/credits/grant?date=2026-03-15"
OK = (200, {"status": "ok", "database": "ok"})
DOWN = (503, {"status": "unavailable", "database": "unavailable"})


class Proxy:
    """A TCP proxy to the test database: cut() drops and refuses connections; restore()."""

    def __init__(self, server_url):
        params = conninfo_to_dict(server_url)
        host, port = params.get("host") or "localhost", int(params.get("port") or 5432)
        if host.startswith("/"):  # the embedded server listens on a Unix socket only
            self.target = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self.target = (socket.AF_INET, (host, port))
        self.port = free_port()
        self.links = []
        self.lock = threading.Lock()
        self.restore()

    def url(self, database_url):
        """database_url, reached through the proxy."""
        return make_conninfo(database_url, host="127.0.0.1", port=str(self.port))

    def restore(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self):
        _close(self.listener)
        with self.lock:
            for link in self.links:
                _close(link)
            self.links = []

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(self.target[0])
            upstream.connect(self.target[1])
            with self.lock:
                self.links += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(sink)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept() or recv()
    except OSError:
        pass
    sock.close()


def timed(request):
    """(seconds taken, what request() answered)."""
    started = time.monotonic()
    answer = request()
    return time.monotonic() - started, answer


def test_service_started_during_an_outage_stays_up_and_recovers_by_itself(
    database_url, server_url, sql_run
):
    sql_run("DROP SCHEMA credits CASCADE")  # applied by the first connection the service has
    proxy = Proxy(server_url)
    proxy.cut()
    served = Served(
        {
            "DATABASE_URL": proxy.url(database_url),
            "CRON_SECRET": SECRET,
            "WEB_CONCURRENCY": "1",
            "CREDITS_DB_TIMEOUT": "1",
        }
    )
    try:
        served.wait_ready()
        assert call(served.port, "/healthz") == DOWN
        status, body = call(served.port, GRANT, SECRET)
        assert (status, body["error"]) == (503, "database unavailable")
        # A worker killed during the outage (OOM, timeout) is replaced by one that boots too.
        os.kill(served.worker_pid(), signal.SIGKILL)
        served.wait_ready()
        assert call(served.port, "/healthz") == DOWN

        proxy.restore()
        assert call(served.port, "/healthz") == OK
        status, body = call(served.port, GRANT, SECRET)
        assert status == 200 and body["complete"] is True, body
    finally:
        output = served.stop()
        proxy.cut()
    assert "Worker failed to boot" not in output


def test_outage_answers_503_within_one_wait_and_the_first_call_after_it_succeeds(
    make_app, server_url, database_url, add_plan, subscribe, auth
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    proxy = Proxy(server_url)
    wait = 2.0
    app = make_app(DATABASE_URL=proxy.url(database_url), CREDITS_DB_TIMEOUT=str(wait))
    client = app.test_client()
    assert client.get("/api/jobs/credits/expire", headers=auth).status_code == 200
    try:
        # A short outage while the pool is full of idle connections (as after a job run):
        # all are broken when the database is back, and none is a reason to refuse.
        hold_every_connection(app)
        proxy.cut()
        proxy.restore()
        stale, response = timed(lambda: client.get("/api/jobs/credits/expire", headers=auth))
        assert response.status_code == 200, response.get_json()

        proxy.cut()
        # Callers keep calling through the outage, long enough for the pool's reconnection
        # back-off to grow past one wait for a connection.
        answers, outage_ends = [], time.monotonic() + 4 * wait
        while time.monotonic() < outage_ends:
            answers.append(timed(lambda: client.get(GRANT, headers=auth)))
            answers.append(timed(lambda: client.get("/healthz")))
        assert {response.status_code for _, response in answers} == {503}
        slowest = max(seconds for seconds, _ in answers)
        assert slowest < 1.5 * wait, f"a 503 took {slowest:.1f} s, CREDITS_DB_TIMEOUT is {wait}"

        proxy.restore()
        back, response = timed(lambda: client.get(GRANT, headers=auth))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["results"]["successful"] == 1
    finally:
        proxy.cut()
    print(
        f"\noutage: first call on a stale pool {stale:.2f} s; slowest 503 {slowest:.2f} s "
        f"(wait {wait:g} s); first grant after the outage {back:.2f} s"
    )


def hold_every_connection(app):
    """Fill the service's pool: take as many connections as it holds at most, give them back."""
    pool = app.extensions["credits"]["pool"]
    connections = [pool.getconn() for _ in range(pool.max_size)]
    for conn in connections:
        pool.putconn(conn)


def test_a_lock_held_elsewhere_holds_back_its_user_only_and_the_next_call_completes(
    make_app, database_url, add_plan, subscribe, sql_run, auth
):
    add_plan("pro", 100, 30)
    for i in (1, 2, 3):
        subscribe(f"s{i}", f"user-{i}", "pro", "2026-01-10")
    sql_run("INSERT INTO credits.balances (user_id, balance) VALUES ('user-2', 0)")
    client = make_app(CREDITS_CHUNK_SIZE="1", CREDITS_PARALLEL_CHUNKS="1").test_client()
    holder = psycopg.connect(database_url)  # a session of the host app, in a transaction
    holder.execute("SELECT * FROM credits.balances WHERE user_id = 'user-2' FOR UPDATE")
    release = threading.Timer(20, holder.rollback)  # on the code before the fix, the grant waits
    release.start()
    budget = 2
    try:
        took, response = timed(lambda: client.get(f"{GRANT}&budget={budget}", headers=auth))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        # user-2 is skipped, not waited for; user-1 and user-3 are granted.
        assert body["complete"] is False
        assert body["results"] == {"processed": 2, "successful": 2, "skipped": 0, "failed": 0}
        assert took < budget + 2, f"the grant with a {budget} s budget took {took:.1f} s"
    finally:
        release.cancel()
        holder.rollback()
        holder.close()

    body = client.get(GRANT, headers=auth).get_json()
    assert body["complete"] is True
    assert body["totals"] == {"processed": 3, "successful": 3, "skipped": 0, "failed": 0}
    balances = sql_run("SELECT user_id, balance FROM credits.balances ORDER BY user_id")
    assert [(b["user_id"], b["balance"]) for b in balances] == [
        ("user-1", 100),
        ("user-2", 100),
        ("user-3", 100),
    ]
    print(f"\nlock held: the grant with a {budget} s budget answered after {took:.2f} s")


def postmaster(pgdata):
    """The embedded PostgreSQL's process, from its postmaster.pid; None when it is not running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:
        return None
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


def stopped(process, timeout=15):
    """Whether the process has ended within the timeout."""
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def test_stopping_the_service_stops_its_embedded_postgres_after_a_worker_was_killed(tmp_path):
    pgdata = tmp_path / "data" / "pgdata"
    served = Served({"CREDITS_DATA_DIR": str(tmp_path / "data"), "WEB_CONCURRENCY": "1"})
    server = None
    try:
        served.wait_ready()
        server = postmaster(pgdata)
        os.kill(served.worker_pid(), signal.SIGKILL)
        served.wait_ready()
        assert call(served.port, "/healthz") == OK
    finally:
        served.stop()
    try:
        assert server is not None and stopped(server), "the embedded PostgreSQL is still running"
    finally:
        if server is not None and server.is_running():
            server.send_signal(signal.SIGQUIT)  # never leave it behind


def test_a_dead_embedded_postgres_is_started_again_by_the_next_request(tmp_path):
    pgdata = tmp_path / "data" / "pgdata"
    served = Served({"CREDITS_DATA_DIR": str(tmp_path / "data"), "WEB_CONCURRENCY": "1"})
    try:
        served.wait_ready()
        assert call(served.port, "/healthz") == OK
        worker, dead = served.worker_pid(), postmaster(pgdata)
        dead.kill()
        assert stopped(dead)
        deadline = time.monotonic() + 30
        while call(served.port, "/healthz") != OK:
            assert time.monotonic() < deadline, "the embedded PostgreSQL was not started again"
        assert served.worker_pid() == worker  # by the same worker, not a restarted one
    finally:
        served.stop()
        server = postmaster(pgdata)
        if server is not None:
            assert stopped(server), "the embedded PostgreSQL is still running"
