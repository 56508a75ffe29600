"""The two daily jobs: grant the month's credits, expire batches past their date.

Each run works through a pass over its keys (subscriptions for grant, users for expire), one
chunk per transaction, in stripes (key ranges) worked side by side on their own connections,
and stops starting chunks when its time budget is spent. Each stripe's position commits with
its chunk, so the next call carries on where the last one stopped, and a run killed
mid-chunk loses only that chunk.
"""

import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone

import psycopg
from psycopg.types.json import Jsonb

from credits.config import Settings
from credits.db import DatabaseUnavailable, connection, queries, retry_aborted

logger = logging.getLogger("credits")

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A budget as a caller writes one: "25", "7.5".
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class InvalidParameter(ValueError):
    """A run was asked for with a parameter it cannot take; nothing was done."""


class JobAlreadyRunning(Exception):
    """Another run of the same job holds its lock; this one did nothing."""


@dataclass(frozen=True)
class Job:
    """What tells one job's passes apart: its counts and how it finds its next chunk."""

    name: str
    counts: tuple[str, ...]
    next_chunk: str  # the statement answering the next chunk's last key and size
    count_keys: str  # the statement counting the keys a stripe has left
    key_at: str  # the statement answering the key at a position, where stripes split
    catches_up: bool = False  # a new pass looks back past the last completed one

    def zero(self):
        return dict.fromkeys(self.counts, 0)


GRANT = Job(
    "grant",
    ("processed", "successful", "skipped", "failed"),
    "next_subscription_chunk",
    "count_pass_subscriptions",
    "subscription_at",
    catches_up=True,
)
EXPIRE = Job(
    "expire",
    ("processedBatches", "processedUsers", "totalExpiredAmount"),
    "next_user_chunk",
    "count_pass_users",
    "user_at",
)


@dataclass(frozen=True)
class JobRun:
    """What one run of a job did, and where its pass stands."""

    job_id: uuid.UUID
    duration_ms: int
    results: dict
    run_date: date | None = None
    dry_run: bool = False
    complete: bool = True
    totals: dict | None = None

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
        body["complete"] = self.complete
        if self.totals is not None:
            body["totals"] = self.totals
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


def parse_budget(text, settings):
    """A run's time budget in seconds: the setting's, or a request's own up to the maximum."""
    if text is None:
        return settings.time_budget
    # Plain decimal digits only: float() also takes "2_7_0", "1e2", " 8" and other scripts' digits.
    budget = float(text) if PLAIN_DECIMAL.fullmatch(text) else None
    if budget is None or not 0 < budget <= settings.max_budget:
        raise InvalidParameter(
            f"budget must be a number of seconds above 0 and at most {settings.max_budget:g} "
            f"(the worker timeout less a margin for the last chunk), got {text!r}"
        )
    return budget


def grant(pool, settings, run_date, job_id=None, dry_run=False, budget=None, progress=None):
    """Grant every subscription due by run_date its credits, once per month.

    A pass covers run_date's month up to run_date and, across the month's end, every due day
    after the last completed pass within the catch-up window (CREDITS_CATCH_UP_DAYS).
    With a budget (seconds) the run stops starting chunks once it is spent and says so;
    without one it finishes the pass. progress(run_date, done, total) is told of each chunk.
    """
    job_id = job_id or uuid.uuid4()
    label = f"[Credits Grant Job {job_id}]"
    params = {"run_date": run_date, "eligible_statuses": list(settings.eligible_statuses)}
    logger.info(
        "%s Starting daily grant process%s",
        label,
        " (dry run)" if dry_run else "",
        extra=_log_fields("grant", job_id, "started", dry_run=dry_run),
    )

    if dry_run:
        started = time.monotonic()
        with connection(pool) as conn, conn.transaction():
            catch_up_from = _catch_up_from(conn, settings, run_date)
            results = conn.execute(
                queries["count_due_subscriptions"], {**params, "catch_up_from": catch_up_from}
            ).fetchone()
        run = JobRun(job_id, _elapsed_ms(started), results, run_date, dry_run=True)
    else:

        def grant_chunk(conn, pass_date, chunk):
            row = conn.execute(
                queries["grant_due_subscriptions"],
                {**params, **chunk, "run_date": pass_date, "job_id": job_id},
            ).fetchone()
            for failure in row.pop("failures"):
                logger.warning(
                    "%s %d subscription(s) cannot be granted: %s (e.g. subscription %r)",
                    label,
                    failure["subscriptions"],
                    failure["reason"],
                    failure["example"],
                )
            return row

        run = _run(pool, settings, GRANT, job_id, label, run_date, grant_chunk, budget, progress)
    _log_end(GRANT, label, run, "Processed: %d, Successful: %d, Skipped: %d, Failed: %d")
    return run


def expire(pool, settings=None, job_id=None, at=None, budget=None, progress=None):
    """Expire every active batch whose expires_at has come by `at` (default: now).

    Budget and progress work as in grant(). A pass belongs to the UTC day of `at`; a call
    that carries on an unfinished pass keeps the pass's own cutoff time.
    """
    settings = settings or Settings.from_mapping({})
    job_id = job_id or uuid.uuid4()
    label = f"[Credits Expire Job {job_id}]"
    logger.info(
        "%s Starting daily expire process", label, extra=_log_fields("expire", job_id, "started")
    )

    def expire_chunk(conn, pass_date, chunk):
        users = conn.execute(queries["lock_expiring_balances"], chunk).fetchone()["users"]
        row = conn.execute(
            queries["expire_batches"], {**chunk, "users": users, "job_id": job_id}
        ).fetchone()
        return {
            "processedBatches": row["processed_batches"],
            "processedUsers": row["processed_users"],
            "totalExpiredAmount": row["total_expired_amount"],
        }

    run_date = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    run = _run(
        pool, settings, EXPIRE, job_id, label, run_date, expire_chunk, budget, progress, cutoff=at
    )
    _log_end(EXPIRE, label, run, "Processed batches: %d, Users: %d, Expired: %d")
    return run


def _run(pool, settings, job, job_id, label, run_date, work, budget, progress, cutoff=None):
    """Work through the job's unfinished earlier passes, then run_date's, under its lock."""
    started = time.monotonic()
    tally = _Tally(job, progress)
    clock = _Budget(started, budget)
    totals = None
    try:
        with connection(pool) as conn:
            try:
                with clock.transaction(conn):
                    conn.execute(
                        queries["start_job_run"],
                        {"job_id": job_id, "job": job.name, "run_date": run_date},
                    )
                with _job_lock(conn, clock, job, job_id):
                    earlier = conn.execute(
                        queries["unfinished_job_passes"], {"job": job.name, "run_date": run_date}
                    ).fetchall()
                    for row in earlier:
                        logger.info(
                            "%s Finishing the unfinished pass of %s", label, row["run_date"]
                        )
                    for pass_date in [row["run_date"] for row in earlier] + [run_date]:
                        stripes = _work_pass(
                            pool, conn, settings, job, pass_date, cutoff, work, tally, clock
                        )
                        complete = all(stripe["complete"] for stripe in stripes)
                        if not complete:
                            break
                    if pass_date == run_date:  # the response's totals are run_date's pass's
                        totals = {
                            name: sum(stripe["totals"][name] for stripe in stripes)
                            for name in job.counts
                        }
                    with clock.transaction(conn):
                        conn.execute(
                            queries["finish_job_run"],
                            {
                                "job_id": job_id,
                                "results": Jsonb(tally.results),
                                "complete": complete,
                            },
                        )
            except Exception as exc:
                # On the run's own connection: a second wait for one, during an outage, would
                # double the time to answer 503.
                _record_failure(conn, job_id, exc, tally.results)
                raise
    except Exception as exc:
        elapsed = _elapsed_ms(started)
        logger.error(
            "%s Failed after %dms: %s",
            label,
            elapsed,
            _reason(exc),
            extra=_log_fields(
                job.name,
                job_id,
                "failed",
                duration_ms=elapsed,
                error=_reason(exc),
                results=tally.results,
            ),
        )
        raise
    return JobRun(job_id, _elapsed_ms(started), tally.results, run_date, False, complete, totals)


class _Budget:
    """A run's time budget: no chunk is started that would likely end past it."""

    def __init__(self, started, seconds):
        self.started = started
        self.seconds = seconds
        self.last_chunk = None  # seconds; None until the run's first chunk is done

    def spent(self):
        # A run always does one chunk, so that even the smallest budget makes progress.
        if self.seconds is None or self.last_chunk is None:
            return False
        return time.monotonic() - self.started + self.last_chunk > self.seconds

    def chunk_took(self, seconds):
        self.last_chunk = seconds

    @contextmanager
    def transaction(self, conn):
        """A transaction none of whose statements waits for a lock past the budget's end."""
        with conn.transaction():
            if self.seconds is not None:
                left = self.seconds - (time.monotonic() - self.started)
                # At least 1 ms: a lock_timeout of 0 means no limit at all.
                conn.execute(
                    queries["limit_lock_wait"], {"timeout": f"{max(1, left * 1000):.0f}ms"}
                )
            yield


class _Tally:
    """What a run's stripes have done, added up as they go; and whether one of them failed."""

    def __init__(self, job, progress):
        self.job = job
        self.results = job.zero()
        self.progress = progress
        self.failed = threading.Event()  # the other stripes start no new chunk
        self._lock = threading.Lock()

    def start_pass(self, run_date, keys):
        self.run_date, self.done, self.keys = run_date, 0, keys
        if self.progress:
            self.progress(run_date, 0, keys)

    def add(self, counts, keys):
        with self._lock:
            for name in self.job.counts:
                self.results[name] += counts[name]
            self.done += keys
            if self.progress:
                self.progress(self.run_date, self.done, self.keys)


@contextmanager
def _job_lock(conn, clock, job, job_id):
    """Hold the job's lock for the run; any other run still marked running is abandoned."""
    with clock.transaction(conn):
        if not conn.execute(queries["lock_job"], {"job": job.name}).fetchone()["locked"]:
            raise JobAlreadyRunning(f"a {job.name} run is already in progress")
        conn.execute(queries["abandon_job_runs"], {"job": job.name, "job_id": job_id})
    try:
        yield
    finally:
        try:
            with conn.transaction():
                conn.execute(queries["unlock_job"], {"job": job.name})
        except psycopg.Error:
            conn.close()  # never hand a connection that may hold the lock back to the pool


def _work_pass(pool, conn, settings, job, run_date, cutoff, work, tally, clock):
    """Work the pass's unfinished stripes side by side; answers where its stripes now stand."""
    pass_keys = {"job": job.name, "run_date": run_date}
    stripes = _pass_stripes(conn, settings, job, run_date, cutoff, clock)
    unfinished = [stripe for stripe in stripes if not stripe["complete"]]
    if tally.progress:
        with clock.transaction(conn):
            keys = sum(
                conn.execute(queries[job.count_keys], stripe).fetchone()["keys"]
                for stripe in unfinished
            )
        tally.start_pass(run_date, keys)
    else:
        tally.start_pass(run_date, None)
    with ThreadPoolExecutor(settings.parallel_chunks) as stripe_workers:
        futures = [
            stripe_workers.submit(
                _work_stripe, pool, settings, job, run_date, stripe, work, tally, clock
            )
            for stripe in unfinished
        ]
    for future in futures:
        future.result()  # the first stripe's error, if any
    with clock.transaction(conn):
        return conn.execute(queries["find_job_pass"], pass_keys).fetchall()


def _pass_stripes(conn, settings, job, run_date, cutoff, clock):
    """The pass's stripes: the unfinished pass's, or a new pass split into even key ranges."""
    pass_keys = {"job": job.name, "run_date": run_date}
    with clock.transaction(conn):
        stripes = conn.execute(queries["find_job_pass"], pass_keys).fetchall()
        if stripes and not all(stripe["complete"] for stripe in stripes):
            return stripes
        catch_up_from = _catch_up_from(conn, settings, run_date) if job.catches_up else None
        everything = {"after_key": None, "upper_key": None}
        keys = conn.execute(queries[job.count_keys], everything).fetchone()["keys"]
        # No stripe smaller than a chunk: a small pass is one stripe.
        parts = max(1, min(settings.parallel_chunks, keys // settings.chunk_size))
        bounds = [
            conn.execute(queries[job.key_at], {"position": keys * k // parts - 1}).fetchone()["key"]
            for k in range(1, parts)
        ]
        conn.execute(queries["clear_job_pass"], pass_keys)
        return conn.execute(
            queries["start_job_pass"],
            {
                **pass_keys,
                "cutoff": cutoff,
                "catch_up_from": catch_up_from,
                "after_keys": [None, *bounds],
                "upper_keys": [*bounds, None],
                "totals": Jsonb(job.zero()),
            },
        ).fetchall()


def _catch_up_from(conn, settings, run_date):
    """The first due day before run_date's month that a new grant pass covers, or None."""
    return conn.execute(
        queries["find_catch_up_start"],
        {"run_date": run_date, "catch_up_days": settings.catch_up_days},
    ).fetchone()["catch_up_from"]


def _work_stripe(pool, settings, job, run_date, stripe, work, tally, clock):
    """Do a stripe's chunks on a connection of its own until it is done or time is up."""
    keys = {key: stripe[key] for key in ("after_key", "upper_key", "cutoff", "catch_up_from")}
    totals = stripe["totals"]
    try:
        with connection(pool) as conn:
            while not (tally.failed.is_set() or clock.spent()):
                chunk_started = time.monotonic()
                try:
                    counts, chunk, totals = _work_chunk(
                        conn, settings, job, run_date, stripe["stripe"], keys, work, totals, clock
                    )
                except psycopg.errors.LockNotAvailable:
                    # A lock held elsewhere outlasted the budget: the chunk rolled back whole,
                    # its stripe stays where it was, and the next call does the chunk again.
                    logger.warning(
                        "A chunk of the %s run waited for a lock until its time budget was "
                        "spent; the next call does it",
                        job.name,
                    )
                    return
                clock.chunk_took(time.monotonic() - chunk_started)
                tally.add(counts, chunk["keys"])
                if chunk["keys"] < settings.chunk_size:
                    return
                keys["after_key"] = chunk["last_key"]
    except BaseException:
        tally.failed.set()
        raise


def _work_chunk(conn, settings, job, run_date, stripe, keys, work, totals, clock):
    """One chunk and its stripe's move past it, in one transaction; an aborted one is retried."""

    def transaction():
        with clock.transaction(conn):
            chunk = conn.execute(
                queries[job.next_chunk], {**keys, "chunk_size": settings.chunk_size}
            ).fetchone()
            counts = job.zero()
            if chunk["keys"]:
                counts = work(conn, run_date, {**keys, "last_key": chunk["last_key"]})
            new_totals = {name: totals[name] + counts[name] for name in job.counts}
            conn.execute(
                queries["advance_job_pass"],
                {
                    "job": job.name,
                    "run_date": run_date,
                    "stripe": stripe,
                    "after_key": chunk["last_key"] or keys["after_key"],
                    "totals": Jsonb(new_totals),
                    "complete": chunk["keys"] < settings.chunk_size,
                },
            )
        return counts, chunk, new_totals

    return retry_aborted(transaction, f"A chunk of the {job.name} run")


def _log_end(job, label, run, counts_format):
    """The run's last line: what it did, and whether its pass is done or goes on next call."""
    fields = _log_fields(
        job.name,
        run.job_id,
        "completed" if run.complete else "stopped",
        dry_run=run.dry_run,
        duration_ms=run.duration_ms,
        results=run.results,
        complete=run.complete,
    )
    counts = [run.results[name] for name in job.counts]
    if run.complete:
        message = f"%s Completed in %dms. {counts_format}"
    else:
        message = f"%s Time budget spent after %dms; call again to carry on. {counts_format}"
    logger.info(message, label, run.duration_ms, *counts, extra=fields)


def _log_fields(job, job_id, event, **more):
    """The fields a JSON log line carries for one step of a run (see CREDITS_LOG_FORMAT)."""
    return {"event": event, "job": job, "job_id": str(job_id), **more}


def _record_failure(conn, job_id, exc, results):
    """Mark a run failed; when the database is gone the row cannot be written, only logged."""
    try:
        with conn.transaction():
            conn.execute(
                queries["fail_job_run"],
                {"job_id": job_id, "error": _reason(exc), "results": Jsonb(results)},
            )
    except psycopg.Error as err:
        logger.error("Could not record the failure of run %s: %s", job_id, err)


def _reason(exc):
    """A one-line reason for a failed run, fit for job_runs and the log."""
    if isinstance(exc, DatabaseUnavailable):
        return "database unavailable"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _elapsed_ms(started):
    return round((time.monotonic() - started) * 1000)
