"""The two daily jobs: grant the month's credits, expire batches past their date."""

import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone

import psycopg
from psycopg.types.json import Jsonb

from credits.db import DatabaseUnavailable, connection, queries

logger = logging.getLogger("credits")

# A deadlock the server broke by aborting this run is retried this many times in all.
ATTEMPTS = 3

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidParameter(ValueError):
    """A run was asked for with a parameter it cannot take; nothing was done."""


class JobAlreadyRunning(Exception):
    """Another run of the same job holds its lock; this one did nothing."""


@dataclass(frozen=True)
class JobRun:
    """What one run of a job did."""

    job_id: uuid.UUID
    duration_ms: int
    results: dict
    run_date: date | None = None
    dry_run: bool = False

    def response(self):
        """The JSON body the cron platform gets, in the documented shape."""
        body = {"success": True}
        if self.dry_run:
            body["dryRun"] = True
        body["jobId"] = str(self.job_id)
        if self.run_date is not None:
            body["date"] = self.run_date.isoformat()
        body["duration"] = self.duration_ms
        body["results"] = self.results
        return body


def parse_run_date(text, today=None):
    """The run date from `YYYY-MM-DD`: a past or present UTC date, never a future one."""
    today = today or datetime.now(timezone.utc).date()
    if text is None:
        return today
    if not _ISO_DATE.fullmatch(text):
        raise InvalidParameter(f"date must be a date as YYYY-MM-DD, got {text!r}")
    try:
        run_date = date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"date {text!r} is not a calendar date") from None
    if run_date > today:
        raise InvalidParameter(f"date {text} is in the future (today is {today} UTC)")
    return run_date


def grant(pool, settings, run_date, job_id=None, dry_run=False):
    """Grant every subscription due for the month of run_date its credits, once."""
    job_id = job_id or uuid.uuid4()
    label = f"[Credits Grant Job {job_id}]"
    params = {
        "run_date": run_date,
        "eligible_statuses": list(settings.eligible_statuses),
        "job_id": job_id,
    }
    logger.info(
        "%s Starting daily grant process%s",
        label,
        " (dry run)" if dry_run else "",
        extra=_log_fields("grant", job_id, "started", dry_run=dry_run),
    )
    started = time.monotonic()

    if dry_run:
        with connection(pool) as conn:
            results = conn.execute(queries["count_due_subscriptions"], params).fetchone()
    else:

        def work(conn):
            row = conn.execute(queries["grant_due_subscriptions"], params).fetchone()
            for missing in row.pop("missing_plans"):
                logger.warning(
                    "%s %d subscription(s) cannot be granted: plan %r does not exist "
                    "(e.g. subscription %r)",
                    label,
                    missing["subscriptions"],
                    missing["plan_id"],
                    missing["example"],
                )
            return row

        results = _run(pool, "grant", job_id, label, started, work, run_date=run_date)

    run = JobRun(job_id, _elapsed_ms(started), results, run_date, dry_run)
    logger.info(
        "%s Completed in %dms. Processed: %d, Successful: %d, Skipped: %d, Failed: %d",
        label,
        run.duration_ms,
        results["processed"],
        results["successful"],
        results["skipped"],
        results["failed"],
        extra=_log_fields(
            "grant",
            job_id,
            "completed",
            dry_run=dry_run,
            duration_ms=run.duration_ms,
            results=results,
        ),
    )
    return run


def expire(pool, job_id=None, at=None):
    """Expire every active batch whose expires_at has come by `at` (default: now)."""
    job_id = job_id or uuid.uuid4()
    label = f"[Credits Expire Job {job_id}]"
    params = {"at": at, "job_id": job_id}
    logger.info(
        "%s Starting daily expire process", label, extra=_log_fields("expire", job_id, "started")
    )
    started = time.monotonic()

    def work(conn):
        conn.execute(queries["lock_expiring_balances"], params)
        row = conn.execute(queries["expire_batches"], params).fetchone()
        return {
            "processedBatches": row["processed_batches"],
            "processedUsers": row["processed_users"],
            "totalExpiredAmount": row["total_expired_amount"],
        }

    results = _run(pool, "expire", job_id, label, started, work)
    run = JobRun(job_id, _elapsed_ms(started), results)
    logger.info(
        "%s Completed in %dms. Processed batches: %d, Users: %d, Expired: %d",
        label,
        run.duration_ms,
        results["processedBatches"],
        results["processedUsers"],
        results["totalExpiredAmount"],
        extra=_log_fields(
            "expire", job_id, "completed", duration_ms=run.duration_ms, results=results
        ),
    )
    return run


def _run(pool, job, job_id, label, started, work, run_date=None):
    """Run work(conn) in one transaction under the job's lock, recorded in job_runs."""
    try:
        with connection(pool) as conn:
            with conn.transaction():
                conn.execute(
                    queries["start_job_run"], {"job_id": job_id, "job": job, "run_date": run_date}
                )
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    with conn.transaction():
                        if not conn.execute(queries["lock_job"], {"job": job}).fetchone()["locked"]:
                            raise JobAlreadyRunning(f"a {job} run is already in progress")
                        results = work(conn)
                        conn.execute(
                            queries["finish_job_run"], {"job_id": job_id, "results": Jsonb(results)}
                        )
                    return results
                except psycopg.errors.DeadlockDetected:
                    if attempt == ATTEMPTS:
                        raise
                    logger.warning("%s Deadlock, retrying (attempt %d)", label, attempt + 1)
    except Exception as exc:
        elapsed = _elapsed_ms(started)
        logger.error(
            "%s Failed after %dms: %s",
            label,
            elapsed,
            _reason(exc),
            extra=_log_fields(job, job_id, "failed", duration_ms=elapsed, error=_reason(exc)),
        )
        _record_failure(pool, job_id, exc)
        raise


def _record_failure(pool, job_id, exc):
    """Mark a run failed; when the database is gone the row cannot be written, only logged."""
    try:
        with connection(pool) as conn, conn.transaction():
            conn.execute(queries["fail_job_run"], {"job_id": job_id, "error": _reason(exc)})
    except (DatabaseUnavailable, psycopg.Error) as err:
        logger.error("Could not record the failure of run %s: %s", job_id, err)


def _reason(exc):
    """A one-line reason for a failed run, fit for job_runs and the log."""
    if isinstance(exc, DatabaseUnavailable):
        return "database unavailable"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _log_fields(job, job_id, event, **more):
    """The fields a JSON log line carries for one step of a run (see CREDITS_LOG_FORMAT)."""
    return {"event": event, "job": job, "job_id": str(job_id), **more}


def _elapsed_ms(started):
    return round((time.monotonic() - started) * 1000)
