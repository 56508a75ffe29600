"""What the engine asks of a job, and what a run did.

A job (grant, expire) names its counts and the statements that walk its keys, and works one
chunk at a time; the engine (engine.py) does the rest.
"""

import logging
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from credits.db import Connection

logger = logging.getLogger("credits")

# progress(run_date, keys done, keys in the pass or None): told of each chunk a run does.
Progress = Callable[[date, int, int | None], None]
# A run's counts by name (processed, successful, ...).
Counts = dict[str, int]


@dataclass(frozen=True)
class Chunk:
    """The keys a job works in one transaction: after after_key up to last_key, in one pass."""

    run_date: date
    cutoff: datetime
    catch_up_from: date | None  # grant's: the pass's first due day before its month, if any
    after_key: str | None
    last_key: str | None  # None: to the end
    keys: list[str] | None = None  # only these keys of the range (held ones tried again)


class Job:
    """One job's passes: its counts, the statements that walk its keys, how it works a chunk.

    A subclass names these; an instance works the chunks of one run and logs as that run.
    """

    name: ClassVar[str]
    title: ClassVar[str]  # the job's name as its log lines say it
    counts: ClassVar[tuple[str, ...]]
    summary: ClassVar[str]  # the counts as the run's last log line says them
    next_chunk: ClassVar[str]  # the statement answering the next chunk's last key and size
    count_keys: ClassVar[str]  # the statement counting the keys a stripe has left
    key_at: ClassVar[str]  # the statement answering the key at a position, where stripes split

    def __init__(self, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self.log = RunLog(self)

    @classmethod
    def zero(cls) -> Counts:
        """Every count at 0."""
        return dict.fromkeys(cls.counts, 0)

    def catch_up_from(self, conn: Connection, run_date: date) -> date | None:
        """The first due day before run_date's month that a new pass covers; None: none."""
        return None

    def work_chunk(self, conn: Connection, chunk: "Chunk") -> tuple[Counts, list[str]]:
        """Do the job for one chunk in the caller's transaction: (its counts, keys held).

        A key is held when an app transaction holds its user's balance: skipped, not waited
        for, and tried again later by its stripe.
        """
        raise NotImplementedError

    def log_end(self, run: "JobRun") -> None:
        """The run's last line: what it did, and whether its pass is done or goes on next call."""
        fields: dict[str, Any] = {
            "event": "completed" if run.complete else "stopped",
            "dry_run": run.dry_run,
            "duration_ms": run.duration_ms,
            "results": run.results,
            "complete": run.complete,
        }
        counts = [run.results[name] for name in self.counts]
        if run.complete:
            message = f"Completed in %dms. {self.summary}"
        else:
            message = f"Time budget spent after %dms; call again to carry on. {self.summary}"
        self.log.info(message, run.duration_ms, *counts, extra=fields)


class RunLog(logging.LoggerAdapter[logging.Logger]):
    """A run's log: each line opens with the run's label and carries its job and id."""

    def __init__(self, job: Job) -> None:
        super().__init__(logger, {"job": job.name, "job_id": str(job.job_id)})
        self.label = f"[Credits {job.title} Job {job.job_id}]"

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[str, MutableMapping[str, Any]]:
        """The line with the run's label in front, and the run's fields beside its own."""
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return f"{self.label} {msg}", kwargs


@dataclass(frozen=True)
class JobRun:
    """What one run of a job did, and where its pass stands."""

    job_id: uuid.UUID
    duration_ms: int
    results: Counts
    run_date: date | None = None
    dry_run: bool = False
    complete: bool = True
    totals: Counts | None = None


@dataclass(frozen=True)
class RunOptions:
    """What a caller may ask of any run: its id, a time budget in seconds, progress reports."""

    job_id: uuid.UUID | None = None
    budget: float | None = None
    progress: Progress | None = None
