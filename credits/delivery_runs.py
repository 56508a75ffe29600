"""Delivery runs: each call of the deliver route and of the CLI's `deliver`, recorded as a run
of job deliver in credits.job_runs, so a receiver refusing every event (a wrong secret) shows
on the console's Runs page, in `runs` and in /metrics (docs/EVENTS.md, "Delivery runs"). A
call that attempted no event keeps no row, and runs past the events' retention are deleted.

Deliveries run side by side, each claiming its own events; each run holds a lock of its own
(sql/lock_deliver_run.sql) so that the next one can tell a run whose process died.
"""

import logging
import uuid

import psycopg
from psycopg.types.json import Jsonb

from credits import events
from credits.config import Settings
from credits.db import Connection, Pool, connection, queries, release_lock
from credits.jobs.budget import Budget
from credits.jobs.engine import failure_reason

logger = logging.getLogger("credits")


def deliver(
    pool: Pool, settings: Settings, budget: float | None, job_id: uuid.UUID
) -> events.Delivery:
    """events.deliver(), recorded as a run of job deliver in credits.job_runs (docs/EVENTS.md)."""
    clock = Budget(budget)
    done = events.Delivery()
    ids = {"job_id": job_id}
    with connection(pool) as conn:
        # The lock first: a run's row is never seen without its lock (abandon_deliver_runs).
        conn.execute(queries["lock_deliver_run"], ids)
        try:
            with conn.transaction():
                conn.execute(queries["start_job_run"], {**ids, "job": "deliver", "run_date": None})
                conn.execute(queries["abandon_deliver_runs"], ids)
            try:
                events.deliver_on(conn, settings, clock, done)
            except Exception as exc:
                _record_run(conn, job_id, done, failure_reason(exc))
                raise
            _record_run(conn, job_id, done, None)
            idle = not (done.delivered or done.failed or done.given_up)
            with conn.transaction():
                days, limit = settings.events_retention_days, events.PRUNE
                prune = {**ids, "idle": idle, "days": days, "limit": limit}
                conn.execute(queries["prune_deliver_runs"], prune)
        finally:
            release_lock(conn, lambda: conn.execute(queries["unlock_deliver_run"], ids))
    events.log_delivery(done)
    return done


def _record_run(
    conn: Connection, job_id: uuid.UUID, done: events.Delivery, error: str | None
) -> None:
    """Mark the run as its delivery went (Delivery.status), or failed with error: results hold
    the counts and the receiver's last error, error the reason a failed run gives."""
    results = Jsonb({**done.results(), "lastError": done.last_error})
    failed = error is not None or done.status == "failed"
    params = {"job_id": job_id, "results": results}
    try:
        with conn.transaction():
            if failed:
                reason = error or f"every attempt failed; the last: {done.last_error}"
                conn.execute(queries["fail_job_run"], {**params, "error": reason})
            else:
                conn.execute(queries["finish_job_run"], {**params, "complete": done.complete})
    except psycopg.Error as err:
        if error is None:
            raise
        logger.error("Could not record the failure of delivery run %s: %s", job_id, err)
