"""The grant job: give every subscription due for the month of a run date its credits, once."""

import uuid
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from credits.config import Settings
from credits.db import Connection, Pool, connection, one, queries
from credits.jobs.budget import Budget
from credits.jobs.engine import Run
from credits.jobs.job import Chunk, Counts, Job, JobRun, RunOptions

# The failed subscriptions a run records for its page (credits.job_run_failures), the first
# ones met (a stripe's chunk adds none once the run holds this many): enough to act on, while
# a plan gone missing fails thousands at once.
FAILURES_KEPT = 1000


class Grant(Job):
    """Grant: a pass over the subscriptions, each chunk's due ones granted in one statement."""

    name = "grant"
    title = "Grant"
    counts = ("processed", "successful", "skipped", "failed")
    summary = "Processed: %d, Successful: %d, Skipped: %d, Failed: %d"
    next_chunk = "next_subscription_chunk"
    count_keys = "count_pass_subscriptions"
    key_at = "subscription_at"

    def __init__(self, job_id: uuid.UUID, settings: Settings) -> None:
        super().__init__(job_id)
        self.eligible_statuses = list(settings.eligible_statuses)
        self.catch_up_days = settings.catch_up_days

    def catch_up_from(self, conn: Connection, run_date: date) -> date | None:
        """The first due day before run_date's month that a new grant pass covers, or None."""
        catch_up_from: date | None = one(
            conn.execute(
                queries["find_catch_up_start"],
                {"run_date": run_date, "catch_up_days": self.catch_up_days},
            )
        )["catch_up_from"]
        return catch_up_from

    def work_chunk(self, conn: Connection, chunk: Chunk) -> tuple[Counts, list[str]]:
        """Grant the chunk's due subscriptions; those that cannot be granted are logged and
        recorded for the run."""
        row = one(
            conn.execute(
                queries["grant_due_subscriptions"],
                {
                    **asdict(chunk),
                    "eligible_statuses": self.eligible_statuses,
                    "job_id": self.job_id,
                    "failures_kept": FAILURES_KEPT,
                },
            )
        )
        for failure in row.pop("failures"):
            self.log.warning(
                "%d subscription(s) cannot be granted: %s (e.g. subscription %r)",
                failure["subscriptions"],
                failure["reason"],
                failure["example"],
            )
        return row, row.pop("held")

    def count_due(self, pool: Pool, run_date: date) -> JobRun:
        """What a grant for run_date would do, written nowhere (the dry run)."""
        clock = Budget(None)
        params: dict[str, Any] = {"run_date": run_date, "eligible_statuses": self.eligible_statuses}
        with connection(pool) as conn, conn.transaction():
            params["catch_up_from"] = self.catch_up_from(conn, run_date)
            results = one(conn.execute(queries["count_due_subscriptions"], params))
        return JobRun(self.job_id, clock.elapsed_ms(), results, run_date, dry_run=True)


@dataclass(frozen=True)
class GrantOptions(RunOptions):
    """A grant's options: those of any run, and a dry run that only counts."""

    dry_run: bool = False


def grant(
    pool: Pool, settings: Settings, run_date: date, options: GrantOptions | None = None
) -> JobRun:
    """Grant every subscription due by run_date its credits, once per month.

    A pass covers run_date's month up to run_date and, across the month's end, every due day
    after the last completed pass within the catch-up window (CREDITS_CATCH_UP_DAYS).

    options: job_id, dry_run, budget (seconds) and progress. With a budget the run stops
    starting chunks once it is spent and says so; without one it finishes the pass.
    progress(run_date, done, total) is told of each chunk.
    """
    asked = options or GrantOptions()
    job = Grant(asked.job_id or uuid.uuid4(), settings)
    job.log.info(
        "Starting daily grant process%s",
        " (dry run)" if asked.dry_run else "",
        extra={"event": "started", "dry_run": asked.dry_run},
    )
    if asked.dry_run:
        run = job.count_due(pool, run_date)
    else:
        run = Run(pool, settings, job, run_date, asked).work()
    job.log_end(run)
    return run
