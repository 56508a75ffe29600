"""What the console's page of one run reads: the run, and the subscriptions it could not grant."""

import uuid
from typing import Any

from credits.db import Pool, connection, queries


def job_run(pool: Pool, run_id: uuid.UUID) -> dict[str, Any] | None:
    """The run with this id, or None."""
    with connection(pool) as conn:
        row = conn.execute(queries["find_job_run"], {"run_id": run_id}).fetchone()
    return None if row is None else dict(row)


def failures(pool: Pool, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The subscriptions the run could not grant, with why (the first ones it met)."""
    with connection(pool) as conn:
        rows = conn.execute(queries["list_job_run_failures"], {"run_id": run_id}).fetchall()
    return [dict(row) for row in rows]
