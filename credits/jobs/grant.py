"""The grant job: give every subscription due for the month of a run date its credits, once."""

import uuid
from dataclasses import asdict, dataclass

from credits.db import connection, queries
from credits.jobs.engine import Budget, Run
from credits.jobs.job import Job, JobRun, RunOptions


class Grant(Job):
    """Grant: a pass over the subscriptions, each chunk's due ones granted in one statement."""

    name = "grant"
    title = "Grant"
    counts = ("processed", "successful", "skipped", "failed")
    summary = "Processed: %d, Successful: %d, Skipped: %d, Failed: %d"
    next_chunk = "next_subscription_chunk"
    count_keys = "count_pass_subscriptions"
    key_at = "subscription_at"

    def __init__(self, job_id, settings):
        super().__init__(job_id)
        self.eligible_statuses = list(settings.eligible_statuses)

    def work_chunk(self, conn, chunk):
        """Grant the chunk's due subscriptions; a plan that does not exist is logged."""
        row = conn.execute(
            queries["grant_due_subscriptions"],
            {**asdict(chunk), "eligible_statuses": self.eligible_statuses, "job_id": self.job_id},
        ).fetchone()
        for missing in row.pop("missing_plans"):
            self.log.warning(
                "%d subscription(s) cannot be granted: plan %r does not exist "
                "(e.g. subscription %r)",
                missing["subscriptions"],
                missing["plan_id"],
                missing["example"],
            )
        return row

    def count_due(self, pool, run_date):
        """What a grant for run_date would do, written nowhere (the dry run)."""
        clock = Budget(None)
        params = {"run_date": run_date, "eligible_statuses": self.eligible_statuses}
        with connection(pool) as conn:
            results = conn.execute(queries["count_due_subscriptions"], params).fetchone()
        return JobRun(self.job_id, clock.elapsed_ms(), results, run_date, dry_run=True)


@dataclass(frozen=True)
class GrantOptions(RunOptions):
    """A grant's options: those of any run, and a dry run that only counts."""

    dry_run: bool = False


def grant(pool, settings, run_date, **options):
    """Grant every subscription due for the month of run_date its credits, once.

    Options: job_id, dry_run, budget (seconds) and progress. With a budget the run stops
    starting chunks once it is spent and says so; without one it finishes the pass.
    progress(run_date, done, total) is told of each chunk.
    """
    asked = GrantOptions(**options)
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
