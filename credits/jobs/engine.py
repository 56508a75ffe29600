"""The pass engine: how a run of a job works through its passes, whatever the job.

Each run works through a pass over its keys (subscriptions for grant, users for expire), one
chunk per transaction, in stripes (key ranges) worked side by side on their own connections,
and stops starting chunks when its time budget is spent. Each stripe's position commits with
its chunk, so the next call carries on where the last one stopped, and a run killed
mid-chunk loses only that chunk.
"""

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from credits.config import Settings
from credits.db import (
    Connection,
    DatabaseUnavailable,
    Pool,
    connection,
    one,
    queries,
    retry_aborted,
)
from credits.jobs.job import Chunk, Counts, Job, JobRun, Progress, RunOptions

logger = logging.getLogger("credits")


class JobAlreadyRunning(Exception):
    """Another run of the same job holds its lock; this one did nothing."""


@dataclass(frozen=True)
class Stripe:
    """A stripe of a pass as job_progress holds it: a key range, where it stands, its totals."""

    number: int
    cutoff: datetime
    catch_up_from: date | None  # grant's: the pass's first due day before its month, if any
    after_key: str | None  # the last key done; None: none yet
    upper_key: str | None  # the stripe's last key; None: to the end
    totals: Counts
    complete: bool


@dataclass(frozen=True)
class NextChunk:
    """Where a stripe's next chunk ends (None when it has no keys left) and how many it holds."""

    last_key: str | None
    keys: int


class Budget:
    """A run's time budget: no chunk is started that would likely end past it."""

    def __init__(self, seconds: float | None) -> None:
        self.started = time.monotonic()
        self.seconds = seconds
        self.last_chunk: float | None = None  # seconds; None until the run's first chunk is done

    def spent(self) -> bool:
        """True when the next chunk would likely end past the budget."""
        # A run always does one chunk, so that even the smallest budget makes progress.
        if self.seconds is None or self.last_chunk is None:
            return False
        return time.monotonic() - self.started + self.last_chunk > self.seconds

    def chunk_took(self, seconds: float) -> None:
        """Remember how long the last chunk took, the estimate for the next one."""
        self.last_chunk = seconds

    def elapsed_ms(self) -> int:
        """Milliseconds since the run started."""
        return _elapsed_ms(self.started)

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[None]:
        """A run's transaction: no JIT, and no statement waits for a lock past the budget's end."""
        with conn.transaction():
            lock_timeout = None
            if self.seconds is not None:
                left = self.seconds - (time.monotonic() - self.started)
                # At least 1 ms: a lock_timeout of 0 means no limit at all.
                lock_timeout = f"{max(1, left * 1000):.0f}ms"
            conn.execute(queries["set_run_limits"], {"lock_timeout": lock_timeout})
            yield


class Tally:
    """What a run's stripes have done, added up as they go; and whether one of them failed."""

    def __init__(self, job: Job, progress: Progress | None) -> None:
        self.counts = job.counts
        self.results = job.zero()
        self.progress = progress
        self.failed = threading.Event()  # the other stripes start no new chunk
        self.run_date: date | None = None  # the pass being worked
        self.done = 0  # keys done in that pass
        self.keys: int | None = (
            None  # keys the pass has left to do; None when nobody asked for progress
        )
        self._lock = threading.Lock()

    def start_pass(self, run_date: date, keys: int | None) -> None:
        """Count a new pass's keys from 0."""
        self.run_date, self.done, self.keys = run_date, 0, keys
        if self.progress:
            self.progress(run_date, 0, keys)

    def add(self, counts: Counts, keys: int) -> None:
        """Add a chunk's counts and its number of keys."""
        with self._lock:
            for name in self.counts:
                self.results[name] += counts[name]
            self.done += keys
            if self.progress:
                assert self.run_date is not None  # start_pass came first
                self.progress(self.run_date, self.done, self.keys)


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
        for row in earlier:
            if not _complete(Pass(self, row["run_date"]).work(conn)):
                return False, None
        stripes = Pass(self, self.run_date).work(conn)
        totals = {name: sum(s.totals[name] for s in stripes) for name in self.job.counts}
        return _complete(stripes), totals

    def _record_failure(self, conn: Connection, exc: Exception) -> None:
        """Mark the run failed; when the database is gone the row cannot be written, only logged."""
        try:
            with conn.transaction():
                conn.execute(
                    queries["fail_job_run"],
                    {
                        "job_id": self.job.job_id,
                        "error": _reason(exc),
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
            _reason(exc),
            extra={
                "event": "failed",
                "duration_ms": elapsed,
                "error": _reason(exc),
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


class StripeWork:
    """One stripe of a pass, worked chunk by chunk on a connection of its own."""

    def __init__(self, pass_: Pass, stripe: Stripe) -> None:
        self.pass_ = pass_
        self.run = pass_.run
        self.stripe = stripe
        self.after_key = stripe.after_key  # where the stripe stands, as committed
        self.totals = stripe.totals

    def work(self) -> None:
        """Do the stripe's chunks until it is done, time is up or another stripe failed."""
        tally, clock = self.run.tally, self.run.clock
        try:
            with connection(self.run.pool) as conn:
                while not (tally.failed.is_set() or clock.spent()):
                    chunk_started = time.monotonic()
                    try:
                        counts, chunk = retry_aborted(
                            lambda: self._work_chunk(conn),
                            f"A chunk of the {self.run.job.name} run",
                        )
                    except psycopg.errors.LockNotAvailable:
                        # A lock held elsewhere outlasted the budget: the chunk rolled back
                        # whole, its stripe stays where it was, and the next call does it again.
                        self.run.job.log.warning(
                            "A chunk of the %s run waited for a lock until its time budget was "
                            "spent; the next call does it",
                            self.run.job.name,
                        )
                        return
                    clock.chunk_took(time.monotonic() - chunk_started)
                    tally.add(counts, chunk.keys)
                    if chunk.keys < self.run.settings.chunk_size:
                        return
                    self.after_key = chunk.last_key
        except BaseException:
            tally.failed.set()
            raise

    def _work_chunk(self, conn: Connection) -> tuple[Counts, NextChunk]:
        """One chunk and the stripe's move past it, in one transaction: (counts, next chunk)."""
        job, chunk_size = self.run.job, self.run.settings.chunk_size
        with self.run.clock.transaction(conn):
            cursor = conn.cursor(row_factory=class_row(NextChunk))
            chunk = one(
                cursor.execute(
                    queries[job.next_chunk],
                    {
                        "after_key": self.after_key,
                        "upper_key": self.stripe.upper_key,
                        "chunk_size": chunk_size,
                    },
                )
            )
            counts = job.zero()
            if chunk.keys:
                assert chunk.last_key is not None  # a chunk with keys ends at one
                counts = job.work_chunk(
                    conn,
                    Chunk(
                        self.pass_.run_date,
                        self.stripe.cutoff,
                        self.stripe.catch_up_from,
                        self.after_key,
                        chunk.last_key,
                    ),
                )
            totals = {name: self.totals[name] + counts[name] for name in job.counts}
            conn.execute(
                queries["advance_job_pass"],
                {
                    **self.pass_.where,
                    "stripe": self.stripe.number,
                    "after_key": chunk.last_key or self.after_key,
                    "totals": Jsonb(totals),
                    "complete": chunk.keys < chunk_size,
                },
            )
        self.totals = totals  # committed
        return counts, chunk


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
        try:
            with conn.transaction():
                conn.execute(queries["unlock_job"], {"job": job.name})
        except psycopg.Error:
            conn.close()  # never hand a connection that may hold the lock back to the pool


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failed run, fit for job_runs and the log."""
    if isinstance(exc, DatabaseUnavailable):
        return "database unavailable"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _elapsed_ms(started: float) -> int:
    """Milliseconds since a time.monotonic() reading."""
    return round((time.monotonic() - started) * 1000)
