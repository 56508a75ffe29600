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
    complete: bool  # walked, and no key held
    walked: bool  # every key of its range was looked at once
    held_keys: list[str]  # skipped for a lock an app transaction held, to try again
    held_after: str | None  # a key below every held key; None: from the first key


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
    """One stripe of a pass, worked chunk by chunk on a connection of its own.

    It walks its key range; the keys a chunk skipped because an app transaction held their
    user's balance are kept with the stripe and tried again once the walk is done, once a
    call: the stripe is complete when none is left.
    """

    def __init__(self, pass_: Pass, stripe: Stripe) -> None:
        self.pass_ = pass_
        self.run = pass_.run
        self.stripe = stripe
        # Where the stripe stands, as committed.
        self.after_key = stripe.after_key
        self.totals = stripe.totals
        self.walked = stripe.walked
        self.held = stripe.held_keys
        self.held_after = stripe.held_after

    def work(self) -> None:
        """Do the stripe's chunks until it is done, time is up or another stripe failed."""
        tally, clock = self.run.tally, self.run.clock
        try:
            with connection(self.run.pool) as conn:
                while not (tally.failed.is_set() or clock.spent()):
                    if self.walked and not self.held:
                        return
                    retrying = self.walked
                    chunk_started = time.monotonic()
                    try:
                        counts, keys = retry_aborted(
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
                    tally.add(counts, keys)
                    if retrying:
                        self._log_held()
                        return
        except BaseException:
            tally.failed.set()
            raise

    def _log_held(self) -> None:
        """Say how many keys open app transactions still hold, left for the next call."""
        if self.held:
            self.run.job.log.warning(
                "%d key(s) of the %s run are held by open transactions of the app; the next "
                "call tries them again",
                len(self.held),
                self.run.job.name,
                extra={"held": len(self.held)},
            )

    def _work_chunk(self, conn: Connection) -> tuple[Counts, int]:
        """One chunk and the stripe's move past it, in one transaction: (counts, keys walked)."""
        job, chunk_size = self.run.job, self.run.settings.chunk_size
        with self.run.clock.transaction(conn):
            work: Chunk | None
            if self.walked:  # the held keys again, in the rest of the range
                chunk = NextChunk(self.stripe.upper_key, 0)
                work = self._chunk(self.held_after, chunk.last_key, self.held)
            else:
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
                work = self._chunk(self.after_key, chunk.last_key, None) if chunk.keys else None
            counts, held = job.work_chunk(conn, work) if work else (job.zero(), [])
            walked = self.walked or chunk.keys < chunk_size
            after_key = self.after_key if self.walked else chunk.last_key or self.after_key
            held_keys = held if self.walked else [*self.held, *held]
            # Below every held key: the bound of the chunk that held the first of them.
            held_after = (self.held_after if self.held else self.after_key) if held_keys else None
            totals = {name: self.totals[name] + counts[name] for name in job.counts}
            conn.execute(
                queries["advance_job_pass"],
                {
                    **self.pass_.where,
                    "stripe": self.stripe.number,
                    "after_key": after_key,
                    "totals": Jsonb(totals),
                    "walked": walked,
                    "held_keys": held_keys,
                    "held_after": held_after,
                },
            )
        # committed
        self.totals, self.after_key, self.walked = totals, after_key, walked
        self.held, self.held_after = held_keys, held_after
        return counts, chunk.keys

    def _chunk(self, after_key: str | None, last_key: str | None, keys: list[str] | None) -> Chunk:
        """The chunk of the stripe's pass after after_key up to last_key (among keys if given)."""
        return Chunk(
            self.pass_.run_date,
            self.stripe.cutoff,
            self.stripe.catch_up_from,
            after_key,
            last_key,
            keys,
        )
