"""A pass's stripes: a key range each, worked chunk by chunk on a connection of its own, and
the tally their chunks add up to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from credits.db import Connection, connection, one, queries, retry_aborted
from credits.jobs.job import Chunk, Counts, Job, Progress

if TYPE_CHECKING:
    from credits.jobs.engine import Pass


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
