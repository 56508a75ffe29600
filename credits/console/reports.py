"""What the console's pages read: the ledger by day and by month, runs, users and actions."""

import csv
import io
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from credits import summary
from credits.db import Connection, Pool, connection, queries

Row = dict[str, Any]

CHART_DAYS = 90
# What each chart series means and its colour, in the order the pages show them.
FLOWS = (
    ("granted", "Granted", "#17794a"),
    ("spent", "Spent", "#2459c7"),
    ("expired", "Expired", "#c77d12"),
    ("voided", "Voided", "#b3261e"),
)
JOB_COLOURS = {"grant": "#17794a", "expire": "#c77d12"}
RUN_STATUSES = ("running", "succeeded", "partial", "failed", "abandoned")


def _rows(pool: Pool, run: Callable[[Connection], Cursor[DictRow]]) -> list[Row]:
    """The rows a statement answers, run(conn) executing it on a connection of the pool."""
    with connection(pool) as conn:
        return [dict(row) for row in run(conn).fetchall()]


def _summarised(pool: Pool, run: Callable[[Connection], Cursor[DictRow]]) -> list[Row]:
    """The rows of a statement over the ledger's daily summary, a long tail folded in first."""
    with connection(pool) as conn:
        summary.fresh(conn)
        with conn.transaction():
            conn.execute(queries["set_report_limits"])
            return [dict(row) for row in run(conn).fetchall()]


def ledger_by_day(pool: Pool, days: int = CHART_DAYS) -> list[Row]:
    """Each of the last days: granted, spent, expired, voided and the outstanding balance."""
    return _summarised(pool, lambda conn: conn.execute(queries["ledger_by_day"], {"days": days}))


def _label(row: Row, period: str) -> str:
    """A day as 2026-05-31, a month as 2026-05."""
    return str(row[period].strftime("%Y-%m" if period == "month" else "%Y-%m-%d"))


def flow_chart(rows: list[Row], period: str) -> dict[str, Any]:
    """A bar chart of the flows per day or month, for Chart.js (static/console.js)."""
    return {
        "type": "bar",
        "labels": [_label(row, period) for row in rows],
        "datasets": [
            {"label": label, "data": [row[key] for row in rows], "color": colour}
            for key, label, colour in FLOWS
        ],
    }


def outstanding_chart(rows: list[Row], period: str) -> dict[str, Any]:
    """A line of the outstanding balance at each day's or month's end."""
    return {
        "type": "line",
        "labels": [_label(row, period) for row in rows],
        "datasets": [
            {
                "label": "Outstanding",
                "data": [row["outstanding"] for row in rows],
                "color": "#6b3fa0",
            }
        ],
    }


def durations_chart(pool: Pool, days: int = CHART_DAYS) -> dict[str, Any]:
    """Each finished run's duration in seconds, one series per job, in the order they ran."""
    runs = _rows(pool, lambda conn: conn.execute(queries["job_run_durations"], {"days": days}))
    return {
        "type": "bar",
        "labels": [run["started_at"].strftime("%Y-%m-%d %H:%M") for run in runs],
        "datasets": [
            {
                "label": f"{job} run (s)",
                "data": [round(run["seconds"], 3) if run["job"] == job else None for run in runs],
                "color": colour,
            }
            for job, colour in JOB_COLOURS.items()
        ],
    }


def ledger_by_month(pool: Pool) -> list[Row]:
    """Each month: granted (in all and by source), spent, expired, voided, outstanding."""
    return _summarised(pool, lambda conn: conn.execute(queries["ledger_by_month"]))


def sources(months: list[Row]) -> list[str]:
    """The grant sources the months have, in name order."""
    return sorted({source for month in months for source in month["granted_by_source"]})


def finance_csv(months: list[Row]) -> str:
    """The finance report as CSV: a row per month, a column per grant source."""
    names = sources(months)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "month",
            "granted",
            *(f"granted_{s}" for s in names),
            "spent",
            "expired",
            "voided",
            "outstanding",
        ]
    )
    for m in months:
        by_source = [m["granted_by_source"].get(s, 0) for s in names]
        writer.writerow(
            [
                m["month"].strftime("%Y-%m"),
                m["granted"],
                *by_source,
                m["spent"],
                m["expired"],
                m["voided"],
                m["outstanding"],
            ]
        )
    return out.getvalue()


def job_runs(
    pool: Pool,
    job: str | None,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Row]:
    """One page of runs, newest first, filtered by job and status."""
    params = {
        "job": job,
        "status": status,
        "before_at": before[0] if before else None,
        "before_id": before[1] if before else None,
        "limit": limit,
    }
    return _rows(pool, lambda conn: conn.execute(queries["console_job_runs"], params))


def find_users(pool: Pool, prefix: str, limit: int = 50) -> list[Row]:
    """Users whose id starts with prefix, with their balance."""
    return _rows(
        pool, lambda conn: conn.execute(queries["find_users"], {"prefix": prefix, "limit": limit})
    )


def user_batches(pool: Pool, user_id: str, limit: int = 500) -> list[Row]:
    """The user's batches, active first."""
    return _rows(
        pool,
        lambda conn: conn.execute(
            queries["list_user_batches"], {"user_id": user_id, "limit": limit}
        ),
    )


def console_actions(pool: Pool, before: int | None, limit: int) -> list[Row]:
    """One page of the console's actions, newest first."""
    return _rows(
        pool,
        lambda conn: conn.execute(
            queries["list_console_actions"], {"before": before, "limit": limit}
        ),
    )
