"""`python -m credits operator ...`: add, remove and list the console's operators."""

import json
import sys
from typing import Any, Protocol

import click

from credits import db
from credits.console import operators


class _Obj(Protocol):
    """What the main command group keeps for its commands (credits.cli.Context)."""

    @property
    def pool(self) -> db.Pool: ...


class BadInput(click.ClickException):
    """A bad name or password: a one-line error and exit status 2, as for other usage errors."""

    exit_code = 2


@click.group("operator")
def operator() -> None:
    """Add, remove and list the console's operators (docs/CONSOLE.md)."""


@operator.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(operators.ROLES), required=True, help="What they may do.")
@click.pass_obj
def add(obj: _Obj, name: str, role: str) -> None:
    """Add an operator; their password is read from standard input (one line)."""
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    try:
        _report(operators.add, obj.pool, name, role, password)
    except operators.OperatorError as exc:
        raise BadInput(str(exc)) from None
    click.echo(json.dumps({"name": name, "role": role, "added": True}))


@operator.command("remove")
@click.argument("name")
@click.pass_obj
def remove(obj: _Obj, name: str) -> None:
    """Remove an operator; their sessions end at their next request."""
    _report(operators.remove, obj.pool, name)
    click.echo(json.dumps({"name": name, "removed": True}))


@operator.command("list")
@click.pass_obj
def list_operators(obj: _Obj) -> None:
    """Every operator's name, role and creation time, as JSON."""
    rows = _report(operators.list_all, obj.pool)
    click.echo(json.dumps(rows, default=str, indent=2))


def _report(call: Any, *args: Any) -> Any:
    """call(*args), with the database's and the rules' refusals as a one-line error (exit 1)."""
    try:
        return call(*args)
    except (operators.OperatorExists, operators.UnknownOperator) as exc:
        raise click.ClickException(str(exc)) from None
    except db.DatabaseUnavailable as exc:
        raise click.ClickException(f"database unavailable: {exc}") from None
    except db.SchemaMissing as exc:
        raise click.ClickException(str(exc)) from None
