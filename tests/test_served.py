"""The service as deployed: the Procfile's gunicorn command, and a local first run."""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

import psycopg

from credits.web import worker
from testing import SECRET
from testing.served import ROOT, Served, call


def test_procfile_command_serves_the_jobs(database_url, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    served = Served({"DATABASE_URL": database_url, "CRON_SECRET": SECRET})
    try:
        served.wait_ready()
        assert call(served.port, "/healthz") == (200, {"status": "ok", "database": "ok"})
        assert call(served.port, "/api/jobs/credits/grant?date=2026-03-15")[0] == 401
        # A secret misplaced in the query string is refused and kept out of the access log.
        assert call(served.port, f"/api/jobs/credits/expire?token={SECRET}")[0] == 401
        assert call(served.port, f"/api/jobs/credits/expire?token={SECRET}", SECRET)[0] == 400
        status, body = call(served.port, "/api/jobs/credits/grant?date=2026-03-15", SECRET)
        assert status == 200 and body["results"]["successful"] == 1
        status, body = call(served.port, "/api/jobs/credits/expire", SECRET)
        assert status == 200 and body["results"]["totalExpiredAmount"] == 100
    finally:
        output = served.stop()
    assert "Starting daily grant process" in output
    assert "Completed in" in output
    assert '"GET /api/jobs/credits/expire HTTP/1.1" 401' in output
    assert SECRET not in output


def test_procfile_command_refuses_to_start_without_a_secret(database_url):
    served = Served({"DATABASE_URL": database_url})
    served.process.wait(timeout=60)
    output = served.stop()
    assert served.process.returncode != 0
    # One line from the master, before it listens, not a traceback from each worker.
    [line] = [line for line in output.splitlines() if "CRON_SECRET" in line]
    assert line.startswith("Error: CRON_SECRET is not set")
    assert "Listening at" not in output and "Traceback" not in output


def test_local_first_run_uses_embedded_postgres_and_a_generated_secret(tmp_path):
    served = Served({"CREDITS_DATA_DIR": str(tmp_path / "data"), "WEB_CONCURRENCY": "2"})
    try:
        served.wait_ready()
        secret = (tmp_path / "data" / "cron_secret").read_text().strip()
        assert call(served.port, "/api/jobs/credits/expire")[0] == 401
        status, body = call(served.port, "/api/jobs/credits/grant", secret)
        assert status == 200 and body["success"] is True
    finally:
        output = served.stop()
    # Once for the service, not once per worker.
    assert output.count("No CRON_SECRET set: using the local secret in") == 1
    assert 'curl -H "Authorization: Bearer $(cat ' in output
    # The address gunicorn binds, not a fixed port 8000.
    assert f"http://127.0.0.1:{served.port}/api/jobs/credits/grant" in output
    assert secret not in output


def test_local_first_run_grants_a_subscription_added_at_the_printed_db_url(tmp_path):
    """The README's first run: a subscription inserted through `db-url` is granted by the job."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRON_SECRET")},
        "CREDITS_DATA_DIR": str(tmp_path / "data"),
    }
    served = Served({"CREDITS_DATA_DIR": env["CREDITS_DATA_DIR"]})
    try:
        served.wait_ready()
        secret = (tmp_path / "data" / "cron_secret").read_text().strip()

        def credits_cli(*args):
            command = [sys.executable, "-m", "credits", *args]
            return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)

        assert credits_cli("load-plans", "plans.example.toml").returncode == 0
        url = credits_cli("db-url").stdout.strip()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO credits.subscriptions VALUES "
                "('sub_1', 'alice', 'pro', 'active', now())"
            )
        status, body = call(served.port, "/api/jobs/credits/grant", secret)
        assert status == 200 and body["results"]["successful"] == 1, body
        account = json.loads(credits_cli("account", "alice").stdout)
        assert account["balance"] == 1000
    finally:
        served.stop()


def raw_request(port, data, timeout=10):
    """Send bytes as they are and return the answer's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return s.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")


def test_idle_and_half_sent_connections_do_not_stop_healthz(database_url):
    """More silent connections than the worker has threads, and half-sent heads; /healthz answers.

    A half-sent head holds a thread for up to credits.web.worker.CLIENT_IO_TIMEOUT a read, so fewer
    of them than the worker has threads.
    """
    served = Served({"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": "1"})
    held = []
    try:
        served.wait_ready()
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", served.port)))
        for _ in range(2):  # slow loris: a request head that never ends
            conn = socket.create_connection(("127.0.0.1", served.port))
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(conn)
        time.sleep(1)
        for _ in range(3):
            started = time.monotonic()
            assert call(served.port, "/healthz", timeout=5)[0] == 200
            assert time.monotonic() - started < 2
    finally:
        for conn in held:
            conn.close()
        served.stop()


def worker_memory(served):
    """Resident memory of the workers, in bytes."""
    import psutil

    return sum(p.memory_info().rss for p in psutil.Process(served.process.pid).children())


def test_a_large_body_gets_413_unread_and_costs_no_memory(database_url):
    served = Served({"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": "1"})
    try:
        served.wait_ready()
        before = worker_memory(served)
        size = 300 * 1024 * 1024
        head = (
            "POST /api/jobs/credits/grant HTTP/1.1\r\nHost: x\r\nUpstash-Signature: any\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            s.sendall(head + b"x" * (1024 * 1024))
            status = s.recv(4096).split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 413 ")
        assert worker_memory(served) - before < 5 * 1024 * 1024
        assert call(served.port, "/healthz")[0] == 200
    finally:
        served.stop()


def test_no_request_writes_its_query_or_headers_to_any_log(database_url):
    served = Served({"DATABASE_URL": database_url, "CRON_SECRET": SECRET})
    query = f"token={SECRET}&note=caf\u00e9"
    wire = [
        f"GET /api/jobs/credits/grant?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /api/jobs/credits/grant?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"),
        f"GET /api/jobs/credits/grant?{query}\tHTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET\t/api/jobs/credits/grant?token={SECRET} HTTP/1.1\r\n\r\n".encode(),
        f"GET /?token={SECRET} HTTP/9.9\r\n\r\n".encode(),
        f"G@T /?token={SECRET} HTTP/1.1\r\n\r\n".encode(),
        f"GET / HTTP/1.1\r\nX-Note: {SECRET}\x00\r\n\r\n".encode(),
        f"GET / HTTP/1.1\r\nBad Header: {SECRET}\r\n\r\n".encode(),
        f"GET / HTTP/1.1\r\nX-Note:\r\n {SECRET}\r\n\r\n".encode(),
        f"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{SECRET}\r\n".encode(),
    ]
    try:
        served.wait_ready()
        statuses = [raw_request(served.port, data) for data in wire]
    finally:
        output = served.stop()
    assert all(status.split()[1][0] == "4" for status in statuses), statuses
    assert "Invalid request from ip=127.0.0.1" in output
    assert SECRET not in output and "token=" not in output and "caf" not in output


def dribble(port, line, seconds, record):
    """Send a request line, then a header one byte a second for `seconds`; note the close.

    The bytes keep coming after the server's close, as a hostile client's would, until the
    socket refuses them. `record` gets what was answered and when the server closed.
    """
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(line)
        while time.monotonic() - started < seconds:
            time.sleep(1)
            if select.select([conn], [], [], 0)[0]:
                try:
                    data = conn.recv(4096)
                except ConnectionResetError:
                    data = b""
                answer += data
                if not data:
                    record["closed_after"] = time.monotonic() - started
                    break
            try:
                conn.sendall(b"a")
            except OSError:  # reset by the server
                record["closed_after"] = time.monotonic() - started
                break
    record["answer"] = answer


def test_clients_dribbling_a_request_head_do_not_stop_healthz(database_url):
    """More clients than the worker has threads, each sending a byte a second long past the
    deadline: /healthz answers within it, and each of them is closed unanswered.

    The clients a thread could not take at once wait for one, then have their own deadline.
    """
    deadline = worker.REQUEST_DEADLINE
    served = Served({"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": "1"})
    line = f"GET /api/jobs/credits/grant?token={SECRET} HTTP/1.1\r\nX-Slow: ".encode()
    records = [{} for _ in range(6)]  # gunicorn.conf.py: 4 threads
    clients = [
        threading.Thread(target=dribble, args=(served.port, line, 2 * deadline + 4, record))
        for record in records
    ]
    try:
        served.wait_ready()
        for client in clients:
            client.start()
        time.sleep(1.5)  # all threads are reading from them
        started = time.monotonic()
        status = call(served.port, "/healthz", timeout=deadline + 3)[0]
        waited = time.monotonic() - started
        for client in clients:
            client.join()
    finally:
        output = served.stop()
    assert status == 200 and waited < deadline + 3
    assert all(record["answer"] == b"" for record in records), records
    assert all("closed_after" in record for record in records), records
    assert "Socket error processing request. (TimeoutError)" in output
    assert SECRET not in output and "token=" not in output
