"""What a monitor asks: is the service up, and have the jobs succeeded lately."""

import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from credits import events
from credits.config import Settings
from credits.db import DatabaseUnavailable, Pool, SchemaMissing, connection, queries, read_clock
from credits.jobs import Expire, Grant

# The order the job routes answer their counts in; jsonb keeps its own order, so results read
# back from job_runs are put in this one (anything else after it, as stored). deliver: the
# delivery runs (credits/delivery_runs.py); the status route watches grant and expire only.
RESULT_ORDER = {**{job.name: job.counts for job in (Grant, Expire)}, "deliver": events.RESULTS}
JOBS = tuple(RESULT_ORDER)

# A JSON object as the routes answer it; a row as psycopg reads it (dict_row).
Body = dict[str, Any]
Row = Mapping[str, Any]

# /healthz answers within this many seconds whatever the database does. A platform restarts a
# service whose health check does not answer in time (Render gives it 5 s): a slow database
# must be a 503, not a restarted service.
HEALTH_TIMEOUT = 2.0
# The probe's parts, each well inside it: the wait for a connection (CREDITS_DB_TIMEOUT when
# that is shorter), and the statement, cut by the server.
HEALTH_CONNECTION_WAIT = 1.0
HEALTH_STATEMENT_MS = 800


def health(pool: Pool) -> tuple[Body, bool]:
    """(body, healthy): whether the process and its database both answer, within HEALTH_TIMEOUT."""
    answered = threading.Event()

    def probe() -> None:
        """Ask the database; a failure leaves `answered` unset."""
        try:
            _probe(pool)
        except (DatabaseUnavailable, SchemaMissing, psycopg.Error):
            return
        answered.set()

    # A connection whose server stopped answering blocks a read with no timeout of its own:
    # the probe runs on a thread of its own and is given up on at the deadline (it ends when
    # the connection does).
    threading.Thread(target=probe, name="credits-healthz", daemon=True).start()
    if answered.wait(HEALTH_TIMEOUT):
        return {"status": "ok", "database": "ok"}, True
    return {"status": "unavailable", "database": "unavailable"}, False


def _probe(pool: Pool) -> None:
    """check_database on a pooled connection, each step bounded well inside HEALTH_TIMEOUT."""
    wait = min(pool.timeout, HEALTH_CONNECTION_WAIT)
    with connection(pool, timeout=wait) as conn, conn.transaction():
        conn.execute(queries["set_probe_timeout"], {"milliseconds": str(HEALTH_STATEMENT_MS)})
        conn.execute(queries["check_database"]).fetchone()


def job_status(pool: Pool, settings: Settings, now: datetime | None = None) -> tuple[Body, bool]:
    """(body, healthy): each job's last run, and whether each succeeded within the max age."""
    max_age = timedelta(hours=settings.status_max_age_hours)
    with connection(pool) as conn:
        rows = conn.execute(queries["last_job_runs"]).fetchall()
        now = now or read_clock(conn)

    jobs: Body = {}
    problems: list[str] = []
    for row in rows:
        succeeded_at = row["last_succeeded_at"]
        stale = succeeded_at is None or now - succeeded_at > max_age
        if stale:
            problems.append(
                f"no successful {row['job']} run in the last {settings.status_max_age_hours:g} "
                "hours"
            )
        jobs[row["job"]] = {
            "lastRun": run_summary(row) if row["id"] else None,
            "lastSuccessAt": _iso(succeeded_at),
            "stale": stale,
        }
    body: Body = {
        "healthy": not problems,
        "maxAgeHours": _number(settings.status_max_age_hours),
        "checkedAt": _iso(now),
        "jobs": jobs,
    }
    if problems:
        body["problems"] = problems
    return body, not problems


def recent_runs(pool: Pool, limit: int = 20, job: str | None = None) -> list[Body]:
    """The most recent runs, newest first, of one job or both."""
    with connection(pool) as conn:
        return conn.execute(queries["list_job_runs"], {"limit": limit, "job": job}).fetchall()


def run_summary(row: Row) -> Body:
    """One job_runs row in the shape of the job routes' answers (jobId, duration, results)."""
    return {
        "jobId": str(row["id"]),
        "job": row["job"],
        "status": row["status"],
        "date": row["run_date"].isoformat() if row["run_date"] else None,
        "startedAt": _iso(row["started_at"]),
        "finishedAt": _iso(row["finished_at"]),
        "duration": duration_ms(row),
        "results": ordered_results(row["job"], row["results"]),
        "error": row["error"],
    }


def ordered_results(job: str, results: Row | None) -> Body | None:
    """A run's results with the counts in the order the job's route answers them."""
    if results is None:
        return None
    order = [k for k in RESULT_ORDER.get(job, ()) if k in results]
    return {k: results[k] for k in [*order, *(k for k in results if k not in order)]}


def duration_ms(row: Row) -> int | None:
    """How long a run took in milliseconds; None while it has not finished."""
    if row["finished_at"] is None:
        return None
    took: timedelta = row["finished_at"] - row["started_at"]
    return round(took.total_seconds() * 1000)


def _number(value: float) -> float:
    """26.0 as 26, 1.5 as 1.5."""
    return int(value) if float(value).is_integer() else value


def _iso(moment: datetime | None) -> str | None:
    """A moment in ISO 8601, in UTC; None stays None."""
    return moment.astimezone(timezone.utc).isoformat() if moment else None
