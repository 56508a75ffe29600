"""The command line's group and what its commands share: settings, the pool, errors, output."""

import functools
import json
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click
from dotenv import load_dotenv

import credits
from credits import config, db, ledger, plans

P = ParamSpec("P")
R = TypeVar("R")


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


def fail_on(*errors: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
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


def reference_option(help_text: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The required --reference option, with the command's own help."""
    return click.option("--reference", "reference_id", required=True, help=help_text)


def print_json(answer: Any) -> None:
    """The answer as one JSON document on stdout (log lines go to stderr)."""
    click.echo(json.dumps(answer, default=lambda value: value.isoformat()))
