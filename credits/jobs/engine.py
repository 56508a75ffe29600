"""The pass engine: how a run of a job works through its passes, whatever the job.

Each run works through a pass over its keys (subscriptions for grant, users for expire), one
chunk per transaction, in stripes (key ranges) worked side by side on their own connections,
and stops starting chunks when its time budget is spent. Each stripe's position commits with
its chunk, so the next call carries on where the last one stopped, and a run killed
mid-chunk loses only that chunk. A stripe's own work is stripes.py's; the clock, budget.py's.
"""

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from credits import summary
from credits.config import Settings
from credits.db import (
    Connection,
    DatabaseUnavailable,
    Pool,
    connection,
    one,
    queries,
    release_lock,
)
from credits.jobs.budget import Budget
from credits.jobs.job import Counts, Job, JobRun, RunOptions
from credits.jobs.stripes import Stripe, StripeWork, Tally

logger = logging.getLogger("credits")


class JobAlreadyRunning(Exception):
    """Another run of the same job holds its lock; this one did nothing."""


@dataclass
class Run:
    """One run of a job: what it was asked and what stays fixed while it works its passes."""

    pool: Pool
    settings: Settings
    job: Job
    run_date: date
    options: RunOptions
    cutoff: datetime | None = None  # expire's: batches due by then; None: now
    clock: Budget = field(init=False)
    tally: Tally = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Budget(self.options.budget)
        self.tally = Tally(self.job, self.options.progress)

    def work(self) -> JobRun:
        """Work through the job's unfinished earlier passes, then run_date's, under its lock."""
        try:
            with connection(self.pool) as conn:
                complete, totals = self._work_on(conn)
                _fold_ledger(conn, self.clock)
        except Exception as exc:
            self._log_failure(exc)
            raise
        return JobRun(
            self.job.job_id,
            self.clock.elapsed_ms(),
            self.tally.results,
            self.run_date,
            complete=complete,
            totals=totals,
        )

    def _work_on(self, conn: Connection) -> tuple[bool, Counts | None]:
        """(complete, totals) of the run on conn; a failure is marked in job_runs on conn too."""
        job_id = self.job.job_id
        where = {"job": self.job.name, "run_date": self.run_date}
        try:
            with self.clock.transaction(conn):
                conn.execute(queries["start_job_run"], {**where, "job_id": job_id})
            with _job_lock(conn, self.job, self.clock):
                complete, totals = self._work_passes(conn, where)
                results = Jsonb(self.tally.results)
                with self.clock.transaction(conn):
                    conn.execute(
                        queries["finish_job_run"],
                        {"job_id": job_id, "results": results, "complete": complete},
                    )
        except Exception as exc:
            # On the run's own connection: a second wait for one, during an outage, would
            # double the time to answer 503.
            self._record_failure(conn, exc)
            raise
        return complete, totals

    def _work_passes(self, conn: Connection, where: dict[str, Any]) -> tuple[bool, Counts | None]:
        """(complete, run_date's totals): unfinished earlier passes first, then run_date's."""
        earlier = conn.execute(queries["unfinished_job_passes"], where).fetchall()
        for row in earlier:
            self.job.log.info("Finishing the unfinished pass of %s", row["run_date"])
        complete = True
        for row in earlier:
            stripes = Pass(self, row["run_date"]).work(conn)
            # Keys held by an open app transaction wait for a later call; they hold no other.
            if not all(stripe.walked for stripe in stripes):
                return False, None
            complete = complete and _complete(stripes)
        stripes = Pass(self, self.run_date).work(conn)
        totals = {name: sum(s.totals[name] for s in stripes) for name in self.job.counts}
        return complete and _complete(stripes), totals

    def _record_failure(self, conn: Connection, exc: Exception) -> None:
        """Mark the run failed; when the database is gone the row cannot be written, only logged."""
        try:
            with conn.transaction():
                conn.execute(
                    queries["fail_job_run"],
                    {
                        "job_id": self.job.job_id,
                        "error": failure_reason(exc),
                        "results": Jsonb(self.tally.results),
                    },
                )
        except psycopg.Error as err:
            logger.error("Could not record the failure of run %s: %s", self.job.job_id, err)

    def _log_failure(self, exc: Exception) -> None:
        """Log the run's failure with what it had done."""
        elapsed = self.clock.elapsed_ms()
        self.job.log.error(
            "Failed after %dms: %s",
            elapsed,
            failure_reason(exc),
            extra={
                "event": "failed",
                "duration_ms": elapsed,
                "error": failure_reason(exc),
                "results": self.tally.results,
            },
        )


class Pass:
    """One pass of a run: the job's keys for one date, in stripes worked side by side."""

    def __init__(self, run: Run, run_date: date) -> None:
        self.run = run
        self.run_date = run_date
        self.where = {"job": run.job.name, "run_date": run_date}

    def work(self, conn: Connection) -> list[Stripe]:
        """Work the pass's unfinished stripes side by side; answers where its stripes now stand."""
        unfinished = [stripe for stripe in self._stripes(conn) if not stripe.complete]
        self.run.tally.start_pass(self.run_date, self._keys_left(conn, unfinished))
        with ThreadPoolExecutor(self.run.settings.parallel_chunks) as stripe_workers:
            futures = [
                stripe_workers.submit(StripeWork(self, stripe).work) for stripe in unfinished
            ]
        for future in futures:
            future.result()  # the first stripe's error, if any
        with self.run.clock.transaction(conn):
            return self._find(conn)

    def _find(self, conn: Connection) -> list[Stripe]:
        """The pass's stripes as job_progress holds them now."""
        cursor = conn.cursor(row_factory=class_row(Stripe))
        return cursor.execute(queries["find_job_pass"], self.where).fetchall()

    def _keys_left(self, conn: Connection, stripes: list[Stripe]) -> int | None:
        """How many keys the stripes have left, when someone is told of progress."""
        if not self.run.tally.progress:
            return None
        with self.run.clock.transaction(conn):
            keys: int = sum(
                one(conn.execute(queries[self.run.job.count_keys], asdict(stripe)))["keys"]
                for stripe in stripes
            )
        return keys

    def _stripes(self, conn: Connection) -> list[Stripe]:
        """The pass's stripes: the unfinished pass's, or a new pass split into even key ranges."""
        job, settings = self.run.job, self.run.settings
        with self.run.clock.transaction(conn):
            stripes = self._find(conn)
            if stripes and not _complete(stripes):
                return stripes
            catch_up_from = job.catch_up_from(conn, self.run_date)
            everything = {"after_key": None, "upper_key": None}
            keys = one(conn.execute(queries[job.count_keys], everything))["keys"]
            # No stripe smaller than a chunk: a small pass is one stripe.
            parts = max(1, min(settings.parallel_chunks, keys // settings.chunk_size))
            bounds = [
                one(conn.execute(queries[job.key_at], {"position": keys * k // parts - 1}))["key"]
                for k in range(1, parts)
            ]
            conn.execute(queries["clear_job_pass"], self.where)
            cursor = conn.cursor(row_factory=class_row(Stripe))
            return cursor.execute(
                queries["start_job_pass"],
                {
                    **self.where,
                    "cutoff": self.run.cutoff,
                    "catch_up_from": catch_up_from,
                    "after_keys": [None, *bounds],
                    "upper_keys": [*bounds, None],
                    "totals": Jsonb(job.zero()),
                },
            ).fetchall()


def _complete(stripes: Sequence[Stripe]) -> bool:
    """Whether every stripe of a pass is done."""
    return all(stripe.complete for stripe in stripes)


@contextmanager
def _job_lock(conn: Connection, job: Job, clock: Budget) -> Iterator[None]:
    """Hold the job's lock for the run; any other run still marked running is abandoned."""
    with clock.transaction(conn):
        if not one(conn.execute(queries["lock_job"], {"job": job.name}))["locked"]:
            raise JobAlreadyRunning(f"a {job.name} run is already in progress")
        conn.execute(queries["abandon_job_runs"], {"job": job.name, "job_id": job.job_id})
    try:
        yield
    finally:
        release_lock(conn, lambda: conn.execute(queries["unlock_job"], {"job": job.name}))


def _fold_ledger(conn: Connection, clock: Budget) -> None:
    """Bring the ledger's daily summary up to date within the run's budget (credits/summary.py)."""
    deadline = None if clock.seconds is None else clock.started + clock.seconds
    try:
        summary.catch_up(conn, deadline)
    except psycopg.Error as exc:
        # The run's work is done and recorded; the console folds what is left when it reads.
        logger.warning("Ledger summary not brought up to date: %s", failure_reason(exc))


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for a failed run, fit for job_runs and the log."""
    if isinstance(exc, DatabaseUnavailable):
        return "database unavailable"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
