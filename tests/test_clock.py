"""The moved clock (testing/clock.py) shows a test that holds only on some days of a month."""

import shutil
import subprocess
import sys
from datetime import date

import pytest

from testing.clock import next_day
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
