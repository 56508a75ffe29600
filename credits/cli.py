"""The operators' command line: `python -m credits COMMAND`."""

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
from dotenv import load_dotenv

import credits
from credits import config, db, jobs, ledger, monitor, plans
from credits.console.cli import operator
from credits.web import bodies, params

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar as ClickProgressBar

P = ParamSpec("P")
R = TypeVar("R")

# The largest amount of credits the ledger stores (a PostgreSQL integer); more is a usage error.
MAX_CREDITS = 2**31 - 1
# The most runs `runs` lists; a larger --limit is a usage error, not a database error.
MAX_RUNS_LISTED = 10_000


class Context:
    """Settings and a pool opened on first use, closed when the command ends."""

    def __init__(self) -> None:
        self.settings = config.Settings.from_mapping(os.environ)
        self._pool: db.Pool | None = None

    @property
    def pool(self) -> db.Pool:
        if self._pool is None:
            self._pool = db.open_pool(self.settings)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Credits: grant, expire and spend credit batches on PostgreSQL.

    Reads DATABASE_URL (and the other settings) from the environment or a .env file;
    without DATABASE_URL it uses the embedded PostgreSQL under CREDITS_DATA_DIR.
    """
    load_dotenv()
    try:
        context = Context()
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    credits.configure_logging(context.settings.log_format)
    ctx.obj = context
    ctx.call_on_close(context.close)


class BadInput(click.ClickException):
    """A missing, malformed or out-of-range argument: a one-line error and exit status 2."""

    exit_code = 2


def _fail_on(*errors: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn the given domain errors into a clean `Error: ...`: exit status 1 for a refusal,
    2 for a bad argument (the library's InvalidArgument, a bad plans file)."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except (ledger.InvalidArgument, plans.PlanFileError) as exc:
                raise BadInput(str(exc)) from None
            except errors as exc:
                raise click.ClickException(str(exc) or type(exc).__name__) from None
            except db.DatabaseUnavailable as exc:
                raise click.ClickException(f"database unavailable: {exc}") from None
            except (db.SchemaMissing, config.ConfigError) as exc:
                # ConfigError: a setting the pool needs, found wrong once it is opened.
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorate


@cli.command("init-db")
@click.pass_obj
@_fail_on()
def init_db(obj: Context) -> None:
    """Create or update the credits schema (safe to run again)."""
    # Applied even with CREDITS_APPLY_SCHEMA=false: this is how the schema's owner does it.
    obj.settings = dataclasses.replace(obj.settings, apply_schema=True)
    db.prepare(obj.pool)
    click.echo("Schema credits is up to date.")


@cli.command("db-url")
@click.pass_obj
@_fail_on()
def db_url(obj: Context) -> None:
    """Print the database's connection string: DATABASE_URL, or the embedded PostgreSQL's."""
    url = db.database_url(obj.settings)
    # Plain text, not JSON, so that `psql "$(python -m credits db-url)"` works. The embedded
    # server outlives this command only while the service (or another command) holds it.
    click.echo(url() if callable(url) else url)


@cli.command("load-plans")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
@_fail_on()
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
    return f"{days} days" if days else "never expire"


@cli.command()
@click.option("--date", "run_date", metavar="YYYY-MM-DD", help="Run date (default: today, UTC).")
@click.option("--dry-run", is_flag=True, help="Count what would be granted; write nothing.")
@click.pass_obj
@_fail_on(params.InvalidParameter, jobs.JobAlreadyRunning)
def grant(obj: Context, run_date: str | None, dry_run: bool) -> None:
    """Grant the month's credits to every subscription due by the run date.

    Runs to the end of the day's pass (no time budget), with a progress bar on stderr.
    """
    with ProgressBar("Granting") as progress:
        run = jobs.grant(
            obj.pool,
            obj.settings,
            params.parse_run_date(run_date, lambda: db.today(obj.pool)),
            dry_run=dry_run,
            progress=progress,
        )
    click.echo(json.dumps(bodies.run_body(run)))


@cli.command()
@click.pass_obj
@_fail_on(jobs.JobAlreadyRunning)
def expire(obj: Context) -> None:
    """Expire every batch past its date and write its remaining credits off.

    Runs to the end of the pass (no time budget), with a progress bar on stderr.
    """
    with ProgressBar("Expiring") as progress:
        run = jobs.expire(obj.pool, obj.settings, progress=progress)
    click.echo(json.dumps(bodies.run_body(run)))


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
@click.argument("user_id")
@click.argument("amount", type=click.IntRange(min=1, max=MAX_CREDITS))
@click.option(
    "--reference",
    "reference_id",
    required=True,
    help="Your idempotency key for this spend: a retry with it spends nothing more.",
)
@click.pass_obj
@_fail_on(ledger.ConsumeError)
def consume(obj: Context, user_id: str, amount: int, reference_id: str) -> None:
    """Spend AMOUNT credits of USER_ID, soonest-expiring batch first."""
    spent = ledger.consume(obj.pool, user_id, amount, reference_id)
    note = " (already spent earlier with this reference)" if spent.replayed else ""
    click.echo(f"Spent {spent.amount} credits of {user_id}{note}. Balance: {spent.balance}")


# --expires-at: a date, or a date and time (UTC unless it says its offset).
_ISO_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _reference_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    return click.option("--reference", "reference_id", required=True, help=help_text)


def _print_json(answer: Any) -> None:
    """The answer as one JSON document on stdout (log lines go to stderr)."""
    click.echo(json.dumps(answer, default=lambda value: value.isoformat()))


@cli.command()
@click.argument("user_id")
@click.argument("amount", type=int)
@click.option(
    "--source", required=True, help="purchase, bonus, registration, promotion or adjustment."
)
@_reference_option("Your idempotency key for this grant: a retry grants nothing more.")
@click.option("--validity-days", type=int, help="Expire this many days from now.")
@click.option("--expires-at", metavar="ISO", type=click.DateTime(_ISO_FORMATS), help="Or then.")
@click.pass_obj
@_fail_on(ledger.Refused)
def add(obj: Context, /, user_id: str, amount: int, **options: Any) -> None:
    """Grant USER_ID a one-off batch of AMOUNT credits (never expiring unless told)."""
    options["expires_at"] = _utc(options["expires_at"])
    _print_json(ledger.grant(obj.pool, ledger.GrantRequest(user_id, amount, **options)))


@cli.command()
@click.argument("user_id")
@click.argument("package_id", metavar="PACKAGE")
@_reference_option("The purchase's reference: the pack is granted once per purchase.")
@click.pass_obj
@_fail_on(ledger.Refused)
def buy(obj: Context, user_id: str, package_id: str, reference_id: str) -> None:
    """Grant USER_ID the credit pack PACKAGE bought under a purchase reference."""
    _print_json(ledger.buy(obj.pool, user_id, package_id, reference_id))


@cli.command()
@click.argument("user_id")
@click.pass_obj
@_fail_on(ledger.Refused)
def bonus(obj: Context, user_id: str) -> None:
    """Grant USER_ID the sign-up bonus ([registration]), once whatever is replayed."""
    _print_json(ledger.registration_bonus(obj.pool, user_id))


@cli.command()
@click.argument("user_id")
@click.argument("amount", type=int, required=False)
@click.option("--service", help="Spend this service's cost (times --quantity) instead.")
@click.option("--quantity", type=int, default=1, show_default=True, help="Uses of --service.")
@_reference_option("Your idempotency key for this spend: a retry spends nothing more.")
@click.option("--metadata", metavar="JSON", help="A JSON object kept with the spend.")
@click.pass_obj
@_fail_on(ledger.Refused)
def spend(obj: Context, /, user_id: str, metadata: str | None, **options: Any) -> None:
    """Spend AMOUNT credits of USER_ID, or --service NAME's cost, soonest-expiring first."""
    if (options["amount"] is None) == (options["service"] is None):
        raise BadInput("give AMOUNT or --service, not both")
    request = ledger.SpendRequest(user_id, metadata=_json_object(metadata), **options)
    _print_json(ledger.spend(obj.pool, request))


@cli.command()
@click.argument("user_id")
@_reference_option("The reference of the spend to reverse.")
@click.pass_obj
@_fail_on(ledger.Refused)
def reverse(obj: Context, user_id: str, reference_id: str) -> None:
    """Give USER_ID's spend back to the batches it came from (once)."""
    _print_json(ledger.reverse(obj.pool, user_id, reference_id))


@cli.command()
@click.argument("reference_id", metavar="REF")
@click.pass_obj
@_fail_on(ledger.Refused)
def void(obj: Context, reference_id: str) -> None:
    """Take back what remains of the one-off grant (or pack) granted under REF."""
    _print_json(ledger.void(obj.pool, reference_id))


@cli.command()
@click.argument("user_id")
@click.pass_obj
@_fail_on(ledger.Refused)
def account(obj: Context, user_id: str) -> None:
    """USER_ID's balance, spendable credits, next expiry and next subscription grant."""
    _print_json(ledger.account(obj.pool, user_id, obj.settings.eligible_statuses))


@cli.command()
@click.argument("user_id")
@click.option("--limit", type=int, default=50, show_default=True, help="Entries (1 to 100).")
@click.option("--before", type=int, metavar="CURSOR", help="next_cursor of the page before.")
@click.pass_obj
@_fail_on(ledger.Refused)
def statement(obj: Context, user_id: str, limit: int, before: int | None) -> None:
    """USER_ID's ledger entries, newest first, one page at a time."""
    _print_json(ledger.statement(obj.pool, user_id, limit=limit, before=before))


def _json_object(text: str | None) -> Any:
    """--metadata as a value, or a one-line error."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(f"--metadata is not JSON: {exc}") from None


def _utc(moment: datetime | None) -> datetime | None:
    """A time given without an offset is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


@cli.command()
@click.argument("user_id")
@click.pass_obj
@_fail_on()
def balance(obj: Context, user_id: str) -> None:
    """Show USER_ID's balance and active batches, in spending order."""
    total, batches = ledger.balance(obj.pool, user_id)
    click.echo(f"{user_id}: {total} credits")
    for b in batches:
        expires = (
            b["expires_at"].astimezone(timezone.utc).isoformat() if b["expires_at"] else "never"
        )
        click.echo(
            f"  batch {b['id']}: {b['remaining']}/{b['amount']} left, expires {expires}"
            f"  ({b['reference_id']})"
        )


@cli.command()
@click.pass_obj
@_fail_on()
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
@_fail_on()
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


cli.add_command(operator)  # the console's operators (credits/console/cli.py)
