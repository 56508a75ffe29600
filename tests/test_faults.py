"""Faults in the middle of a large run: a killed worker, a terminated database connection.

Each time, the chunk in flight rolls back whole, the chunks before it stay, the next run
completes the day with exact totals, and credits.job_runs tells the truth. Sizes are small
here; FAULTS_SUBSCRIPTIONS raises them for a longer run (docs/RELIABILITY.md).
"""

import os
import signal
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from credits import config, db, jobs

from .conftest import SECRET
from .test_served import Served, call

N = int(os.environ.get("FAULTS_SUBSCRIPTIONS", "4000"))
CHUNKED = {"CREDITS_CHUNK_SIZE": "100", "CREDITS_PARALLEL_CHUNKS": "2"}
figures = []


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    """Where each fault landed, printed after this file's tests (run with -s)."""
    yield
    print(f"\nfaults ({N:,} subscriptions): " + "; ".join(figures))


@pytest.fixture
def subscribers(sql_run, add_plan):
    """N subscribers due on the 10th, and every chunk statement slowed down a little."""
    add_plan("pro", 10, 30)
    sql_run(
        "INSERT INTO credits.subscriptions "
        "SELECT 'sub-' || i, 'user-' || i, 'pro', 'active', '2026-01-10', NULL "
        "FROM generate_series(1, %s) AS i",
        (N,),
    )
    sql_run("""
        CREATE FUNCTION credits.slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
        CREATE TRIGGER slow_grant AFTER INSERT ON credits.batches
            FOR EACH STATEMENT EXECUTE FUNCTION credits.slow_chunk();
        CREATE TRIGGER slow_expire AFTER UPDATE ON credits.batches
            FOR EACH STATEMENT EXECUTE FUNCTION credits.slow_chunk();
    """)


def progress(sql_run, job):
    """How many keys the job's current pass has done, and whether it is complete."""
    rows = sql_run("SELECT totals, complete FROM credits.job_progress WHERE job = %s", (job,))
    keys = "processed" if job == "grant" else "processedUsers"
    return sum(r["totals"][keys] for r in rows), bool(rows) and all(r["complete"] for r in rows)


def worker_pid(served):
    children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children")
    [pid] = children.read_text().split()
    return int(pid)


def call_until_done(port, path, timeout=120):
    """Call until the pass is complete; a 409 while the dead run's lock is let go is retried."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the day did not complete"
        status, body = call(port, path, SECRET)
        if status == 200 and body["complete"]:
            return body
        assert status in (200, 409), body
        time.sleep(0.2)


@pytest.mark.parametrize("job", ["grant", "expire"])
def test_worker_killed_mid_run_loses_only_its_chunks_in_flight(
    database_url, sql_run, subscribers, job
):
    if job == "expire":
        sql_run("ALTER TABLE credits.batches DISABLE TRIGGER slow_grant")
        jobs.grant(*_pool_and_settings(database_url), date(2026, 3, 15))
        sql_run("ALTER TABLE credits.batches ENABLE TRIGGER slow_grant")
        sql_run("UPDATE credits.batches SET expires_at = '2026-04-01'")  # all due now
    path = (
        "/api/jobs/credits/grant?date=2026-03-15" if job == "grant" else "/api/jobs/credits/expire"
    )
    served = Served(
        {"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": "1", **CHUNKED}
    )
    try:
        served.wait_ready()
        victim = worker_pid(served)
        caller = threading.Thread(target=lambda: _swallow(call, served.port, path, SECRET))
        caller.start()
        deadline = time.monotonic() + 60
        while progress(sql_run, job)[0] < N // 4:  # a quarter of the way in
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
        caller.join(timeout=30)
        done_before, complete = progress(sql_run, job)
        assert not complete and 0 < done_before < N

        body = call_until_done(served.port, path)
    finally:
        served.stop()
    figures.append(f"{job} worker killed after {done_before:,} keys, the next calls did the rest")

    statuses = [
        r["status"]
        for r in sql_run(
            "SELECT status FROM credits.job_runs WHERE job = %s ORDER BY started_at", (job,)
        )
    ]
    assert statuses[0] == "abandoned" and statuses[-1] == "succeeded", statuses
    assert "running" not in statuses
    if job == "grant":
        assert body["totals"] == {"processed": N, "successful": N, "skipped": 0, "failed": 0}
        counts = sql_run(
            "SELECT count(*) AS n, count(DISTINCT reference_id) AS refs FROM credits.batches"
        )[0]
        assert counts == {"n": N, "refs": N}
    else:
        assert body["totals"]["processedBatches"] == N
        assert body["totals"]["processedUsers"] == N
        assert (
            sql_run("SELECT count(*) AS n FROM credits.transactions WHERE type = 'expire'")[0]["n"]
            == N
        )
        assert sql_run("SELECT sum(balance) AS s FROM credits.balances")[0]["s"] == 0


def test_connection_terminated_mid_statement_fails_the_run_and_the_next_completes(
    database_url, sql_run, subscribers
):
    pool, settings = _pool_and_settings(database_url, CREDITS_PARALLEL_CHUNKS="1")
    outcome = {}

    def run():
        try:
            outcome["run"] = jobs.grant(pool, settings, date(2026, 3, 15))
        except Exception as exc:  # asserted below
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 30
    terminated = []
    while not terminated:
        assert time.monotonic() < deadline, "no chunk statement was seen running"
        if progress(sql_run, "grant")[0] >= N // 4:
            terminated = sql_run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event = 'PgSleep'"
            )
        time.sleep(0.01)
    runner.join(timeout=30)
    pool.close()

    assert isinstance(outcome.get("error"), db.DatabaseUnavailable), outcome
    [run] = sql_run("SELECT status, error, results FROM credits.job_runs")
    assert run["status"] == "failed" and run["error"] == "database unavailable"
    done, _ = progress(sql_run, "grant")
    # The committed chunks stay, the terminated one left nothing behind.
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == done
    assert run["results"]["successful"] == done

    pool, settings = _pool_and_settings(database_url)
    try:
        again = jobs.grant(pool, settings, date(2026, 3, 15))
    finally:
        pool.close()
    assert again.results["successful"] == N - done
    figures.append(f"grant connection terminated after {done:,} keys, the next run did the rest")
    assert again.totals == {"processed": N, "successful": N, "skipped": 0, "failed": 0}


def _pool_and_settings(database_url, **overrides):
    settings = config.Settings.from_mapping({"DATABASE_URL": database_url, **CHUNKED, **overrides})
    return db.open_pool(settings), settings


def _swallow(function, *args):
    """Call, ignoring the connection error a killed worker gives its caller."""
    try:
        function(*args)
    except OSError:
        pass
