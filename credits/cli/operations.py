"""The operators' commands: the schema, the plans, the two jobs, and checks of what they did."""

import dataclasses
import json
import sys
from datetime import date, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click

from credits import db, jobs, ledger, monitor, plans, schema
from credits.cli.base import Context, cli, fail_on
from credits.jobs import body, params

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar as ClickProgressBar

# The most runs `runs` lists; a larger --limit is a usage error, not a database error.
MAX_RUNS_LISTED = 10_000


@cli.command("init-db")
@click.pass_obj
@fail_on()
def init_db(obj: Context) -> None:
    """Create or update the credits schema (safe to run again)."""
    # Applied even with CREDITS_APPLY_SCHEMA=false: this is how the schema's owner does it.
    obj.settings = dataclasses.replace(obj.settings, apply_schema=True)
    db.prepare(obj.pool)
    click.echo("Schema credits is up to date.")


@cli.command("functions-migration")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def functions_migration(path: str) -> None:
    """Write the schema's functions (sql/functions/) as one SQL file for a host's migration
    tool: a new migration of that tool whenever a release changes them (docs/DATABASE.md)."""
    Path(path).write_text(schema.functions_migration(), encoding="utf-8")
    files = [functions.file for functions in schema.function_files()]
    click.echo(json.dumps({"path": path, "files": files}))


@cli.command("db-url")
@click.pass_obj
@fail_on()
def db_url(obj: Context) -> None:
    """Print the database's connection string: DATABASE_URL, or the embedded PostgreSQL's."""
    url = db.database_url(obj.settings)
    # Plain text, not JSON, so that `psql "$(python -m credits db-url)"` works. The embedded
    # server outlives this command only while the service (or another command) holds it.
    click.echo(url() if callable(url) else url)


@cli.command("load-plans")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
@fail_on()
def load_plans(obj: Context, path: str) -> None:
    """Create or update plans, packs, services, the sign-up bonus and the balance cap from a
    TOML file (see plans.example.toml), all or nothing."""
    loaded = plans.load_plans(obj.pool, path)
    for plan in loaded.plans:
        click.echo(
            f"{plan['plan_id']}: {plan['monthly_credits']} credits a month, "
            f"{_validity(plan['validity_days'])}"
        )
    for package in loaded.packages:
        click.echo(
            f"package {package['package_id']}: {package['credits']} credits + "
            f"{package['bonus']} bonus, {_validity(package['validity_days'])}"
        )
    for service in loaded.services:
        click.echo(f"service {service['service']}: {service['cost']} credits a use")
    if loaded.registration:
        click.echo(
            f"sign-up bonus: {loaded.registration['credits']} credits, "
            f"{_validity(loaded.registration['validity_days'])}"
        )
    if loaded.limits:
        click.echo(f"balance cap for packs: {loaded.limits['max_balance'] or 'none'}")
    click.echo(f"Loaded {len(loaded.plans)} plan(s).")


def _validity(days: int | None) -> str:
    """How long a grant lasts, in words."""
    return f"{days} days" if days else "never expire"


@cli.command()
@click.option("--date", "run_date", metavar="YYYY-MM-DD", help="Run date (default: today, UTC).")
@click.option("--dry-run", is_flag=True, help="Count what would be granted; write nothing.")
@click.pass_obj
@fail_on(params.InvalidParameter, jobs.JobAlreadyRunning)
def grant(obj: Context, run_date: str | None, dry_run: bool) -> None:
    """Grant the month's credits to every subscription due by the run date.

    Runs to the end of the day's pass (no time budget), with a progress bar on stderr.
    """
    with ProgressBar("Granting") as progress:
        run = jobs.grant(
            obj.pool,
            obj.settings,
            params.parse_run_date(run_date, lambda: db.today(obj.pool)),
            jobs.GrantOptions(dry_run=dry_run, progress=progress),
        )
    click.echo(json.dumps(body.run_body(run)))


@cli.command()
@click.pass_obj
@fail_on(jobs.JobAlreadyRunning)
def expire(obj: Context) -> None:
    """Expire every batch past its date and write its remaining credits off.

    Runs to the end of the pass (no time budget), with a progress bar on stderr.
    """
    with ProgressBar("Expiring") as progress:
        run = jobs.expire(obj.pool, obj.settings, jobs.ExpireOptions(progress=progress))
    click.echo(json.dumps(body.run_body(run)))


class ProgressBar:
    """click's progress bar on stderr, one for each pass a job run works through."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: ClickProgressBar[int] | None = None
        self.run_date: date | None = None
        self.shown = 0

    def __enter__(self) -> "ProgressBar":
        return self

    def __call__(self, run_date: date, done: int, total: int | None) -> None:
        if self.bar is None or run_date != self.run_date:
            self.__exit__()
            self.run_date, self.shown = run_date, 0
            self.bar = click.progressbar(
                length=max(total or 0, 1),
                label=f"{self.label} {run_date}",
                file=sys.stderr,
            )
        self.bar.update(done - self.shown)
        self.shown = done

    def __exit__(
        self,
        kind: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


@cli.command()
@click.pass_obj
@fail_on()
def verify(obj: Context) -> None:
    """Check balance = ledger total = active remaining for every user, and each ledger entry's
    balance_after; exit 1 if not."""
    rows, count = ledger.find_invariant_violations(obj.pool)
    if not count:
        click.echo("OK: every balance matches its ledger and its active batches.")
        return
    for r in rows:
        misstated = r["misstated_entries"]
        click.echo(
            f"{r['user_id']}: balance {r['balance']}, ledger {r['ledger_total']}, "
            f"active batches {r['active_remaining']}"
            + (f", {misstated} entries with a wrong balance_after" if misstated else ""),
            err=True,
        )
    more = f" (first {len(rows)} shown)" if count > len(rows) else ""
    raise click.ClickException(f"{count} user(s) do not add up{more}.")


@cli.command()
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_RUNS_LISTED),
    help="Runs.",
)
@click.option("--job", type=click.Choice(monitor.JOBS), help="Only this job's runs.")
@click.pass_obj
@fail_on()
def runs(obj: Context, limit: int, job: str | None) -> None:
    """Show the most recent runs of the jobs, newest first, as a table."""
    rows = monitor.recent_runs(obj.pool, limit=limit, job=job)
    if not rows:
        click.echo("No runs yet.")
        return
    table = [("STARTED (UTC)", "JOB", "STATUS", "DURATION", "DATE", "JOB ID", "RESULTS")]
    for row in rows:
        duration = monitor.duration_ms(row)
        table.append(
            (
                row["started_at"].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                row["job"],
                row["status"],
                "-" if duration is None else f"{duration}ms",
                row["run_date"].isoformat() if row["run_date"] else "-",
                str(row["id"]),
                _outcome(row),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, line[-1]]).rstrip())


def _outcome(row: monitor.Body) -> str:
    """A run's results as name=value pairs, or its error when it has one."""
    if row["error"]:
        return f"error: {row['error']}"
    if not row["results"]:
        return "-"
    results = monitor.ordered_results(row["job"], row["results"])
    assert results is not None  # the run has results
    return " ".join(f"{name}={value}" for name, value in results.items())
