"""The moved clock (testing/clock.py) shows a test that holds only on some days of a month."""

import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date

import psycopg
import pytest

from testing.clock import next_day
from testing.databases import embedded_server
from testing.served import ROOT

# Holds from the 10th of a month on: the pattern the moved clock is there to catch.
CALENDAR_BOUND_TEST = """
def test_a_grant_today(client, auth, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", START)
    body = client.get("/api/jobs/credits/grant", headers=auth).get_json()
    assert body["date"] == "MOVED"  # the service's date is the moved database's
    assert body["results"]["successful"] == 1
"""

needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None,
    reason="faketime is not installed (Debian: apt-get install faketime); .ci/run installs it",
)


@pytest.mark.parametrize(
    "day, after, expected",
    [
        ("1", date(2026, 12, 4), date(2027, 1, 1)),
        ("31", date(2026, 12, 31), date(2027, 1, 31)),
        ("31", date(2027, 1, 31), date(2027, 3, 31)),
        ("28", date(2026, 12, 4), date(2026, 12, 28)),
        ("02-29", date(2026, 12, 4), date(2028, 2, 29)),
    ],
)
def test_the_next_day_of_the_month_comes_after_today(day, after, expected):
    assert next_day(day, after) == expected


@pytest.mark.parametrize("day", ["0", "32", "02-30", "13-01", "x"])
def test_a_day_no_month_has_is_refused(day):
    with pytest.raises(ValueError, match="is not a day"):
        next_day(day, date(2026, 12, 4))


def moved_run(day, tmp_path, start):
    """The calendar-bound test, its subscription started on `start`, run by pytest through
    `python -m testing.clock --day DAY`."""
    moved = next_day(day, date.today())
    test = tmp_path / "test_calendar_bound.py"
    test.write_text(
        CALENDAR_BOUND_TEST.replace("START", repr(start)).replace("MOVED", moved.isoformat())
    )
    command = [sys.executable, "-m", "testing.clock", "--day", day, "--"]
    command += [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(test)]
    command += ["--rootdir", str(tmp_path), "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@needs_faketime
def test_a_test_due_only_from_the_10th_fails_on_the_1st_and_passes_on_the_28th(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    on_the_1st = moved_run("1", tmp_path, "2026-01-10")
    assert on_the_1st.returncode == 1, on_the_1st.stdout + on_the_1st.stderr
    assert "1 failed" in on_the_1st.stdout  # on the due count, the date being the moved one
    assert '>       assert body["results"]["successful"] == 1' in on_the_1st.stdout
    on_the_28th = moved_run("28", tmp_path, "2026-01-10")
    assert on_the_28th.returncode == 0, on_the_28th.stdout + on_the_28th.stderr


@needs_faketime
def test_a_subscription_started_on_the_first_is_due_on_29_february(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    result = moved_run("02-29", tmp_path, "2026-01-01")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_moved_clock_refuses_a_server_it_did_not_start(monkeypatch):
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    command = [sys.executable, "-m", "testing.clock", "--", "true"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: TEST_DATABASE_URL is set") and line.endswith("moved clock")


@contextmanager
def cancelled_after(seconds, *connections):
    """Cancel what the connections run if it outlasts `seconds`, as the server should have."""
    timer = threading.Timer(seconds, lambda: [conn.cancel_safe() for conn in connections])
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@needs_faketime
def test_on_a_moved_clock_the_servers_lock_and_deadlock_timeouts_fire(monkeypatch):
    """libfaketime answered the real time while PostgreSQL waited, so a timeout's alarm judged
    its moved deadline days away: a lock wait outlived lock_timeout and a deadlock was never
    found (a moved-clock run hung). testing/waits.c keeps the waits on the moved clock."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    moved = next_day("1", date.today())
    monkeypatch.setenv("TEST_CLOCK", moved.isoformat())
    with embedded_server() as url:
        first = psycopg.connect(url, autocommit=True)
        second = psycopg.connect(url, autocommit=True)
        with first, second:
            assert first.execute("SELECT current_date").fetchone()[0] == moved
            first.execute("CREATE TABLE held (id int PRIMARY KEY)")
            first.execute("INSERT INTO held VALUES (1), (2)")
            # lock_timeout, while a row is held elsewhere (else cancelled, a QueryCanceled).
            first.execute("BEGIN; SELECT * FROM held WHERE id = 1 FOR UPDATE")
            second.execute("SET lock_timeout = '200ms'")
            with cancelled_after(10, second), pytest.raises(psycopg.errors.LockNotAvailable):
                second.execute("SELECT * FROM held WHERE id = 1 FOR UPDATE")
            # A deadlock, found after deadlock_timeout (1 s): one of the two is cancelled.
            second.execute("SET lock_timeout = 0")
            second.execute("BEGIN; SELECT * FROM held WHERE id = 2 FOR UPDATE")
            outcomes = []

            def take(conn, row):
                try:
                    conn.execute(f"SELECT * FROM held WHERE id = {row} FOR UPDATE")
                    outcomes.append("locked")
                except psycopg.Error as exc:
                    outcomes.append(type(exc).__name__)
                    conn.rollback()

            with cancelled_after(20, first, second), ThreadPoolExecutor(1) as executor:
                waiting = executor.submit(take, first, 2)  # waits on the second
                time.sleep(0.2)
                take(second, 1)  # and the second on the first
                waiting.result()
            assert sorted(outcomes) == ["DeadlockDetected", "locked"], outcomes
