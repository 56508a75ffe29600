"""The expire job: close every active batch past its date and write its credits off."""

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from credits import db, events
from credits.config import Settings
from credits.db import Connection, Pool, connection, one, queries
from credits.jobs.engine import Run
from credits.jobs.job import Chunk, Counts, Job, JobRun, RunOptions


class Expire(Job):
    """Expire: a pass over the users, each chunk's due batches expired in one statement."""

    name = "expire"
    title = "Expire"
    counts = ("processedBatches", "processedUsers", "totalExpiredAmount")
    summary = "Processed batches: %d, Users: %d, Expired: %d"
    next_chunk = "next_user_chunk"
    count_keys = "count_pass_users"
    key_at = "user_at"

    def work_chunk(self, conn: Connection, chunk: Chunk) -> tuple[Counts, list[str]]:
        """Lock the balances of the chunk's users with batches due, then expire those batches."""
        params = asdict(chunk)
        locked = one(conn.execute(queries["lock_expiring_balances"], params))
        users = locked["users"]
        row = one(
            conn.execute(
                queries["expire_batches"], {**params, "users": users, "job_id": self.job_id}
            )
        )
        counts = {
            "processedBatches": row["processed_batches"],
            "processedUsers": row["processed_users"],
            "totalExpiredAmount": row["total_expired_amount"],
        }
        return counts, locked["held"]


@dataclass(frozen=True)
class ExpireOptions(RunOptions):
    """An expire's options: those of any run, and the moment batches are due by."""

    at: datetime | None = None  # None: now


def expire(pool: Pool, settings: Settings, options: ExpireOptions | None = None) -> JobRun:
    """Expire every active batch whose expires_at has come by `at` (default: now).

    options: job_id, at, budget and progress, the last two as in grant(). A pass belongs to
    the UTC day of `at`; a call that carries on an unfinished pass keeps the pass's own cutoff.
    """
    asked = options or ExpireOptions()
    job = Expire(asked.job_id or uuid.uuid4())
    job.log.info("Starting daily expire process", extra={"event": "started"})
    run_date = (asked.at or db.now(pool)).astimezone(timezone.utc).date()
    run = Run(pool, settings, job, run_date, asked, cutoff=asked.at).work()
    job.log_end(run)
    if run.complete:
        # Once the due batches are gone, those lapsing soon are announced, each once.
        with connection(pool) as conn, conn.transaction():
            noticed = events.notice_expiring(conn, asked.at)
        job.log.info("Expiring soon: %d batch(es) announced", noticed, extra={"noticed": noticed})
    return run
