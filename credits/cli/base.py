"""The command line's group and what its commands share: settings, the pool, errors, output."""

import functools
import json
import logging
import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import click
from dotenv import load_dotenv

import credits
from credits import config, db, ledger, plans
from credits.jobs import params

P = ParamSpec("P")
R = TypeVar("R")


class LastPoolError(logging.Handler):
    """Keeps the pool's last connection error instead of printing each retry: an unreachable
    database is one line, `database unavailable: <why>`, not a screen of retries."""

    last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("error connecting"):  # "error connecting in 'credits': <why>"
            self.last = message.partition(": ")[2].splitlines()[0]


POOL_ERRORS = LastPoolError()


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
    pool_log = logging.getLogger("psycopg.pool")
    pool_log.propagate = False
    if POOL_ERRORS not in pool_log.handlers:
        pool_log.addHandler(POOL_ERRORS)
    POOL_ERRORS.last = None
    ctx.obj = context
    ctx.call_on_close(context.close)


class BadInput(click.ClickException):
    """A missing, malformed or out-of-range argument: a one-line error and exit status 2."""

    exit_code = 2


def fail_on(*errors: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn the given domain errors into a clean `Error: ...`: exit status 1 for a refusal,
    2 for a bad argument (the library's InvalidArgument, a bad plans file, a bad run date)."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except (ledger.InvalidArgument, plans.PlanFileError, params.InvalidParameter) as exc:
                raise BadInput(str(exc)) from None
            except errors as exc:
                raise click.ClickException(str(exc) or type(exc).__name__) from None
            except db.DatabaseUnavailable as exc:
                why = POOL_ERRORS.last or str(exc)
                raise click.ClickException(f"database unavailable: {why}") from None
            except (db.SchemaMissing, config.ConfigError) as exc:
                # ConfigError: a setting the pool needs, found wrong once it is opened.
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorate


def reference_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The required --reference option, with the command's own help."""
    return click.option("--reference", "reference_id", required=True, help=help_text)


def print_json(answer: Any) -> None:
    """The answer as one JSON document on stdout (log lines go to stderr)."""
    click.echo(json.dumps(answer, default=_plain))


def _plain(value: Any) -> Any:
    """A value JSON has no type for: a time as ISO 8601, a sum (numeric) as a whole number."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, UUID):
        return str(value)
    return value.isoformat()
