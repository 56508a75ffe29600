"""The commands' old names, kept for scripts: each says on stderr what replaces it, then does
what it always did, its result as JSON on stdout like every command (docs/CLI.md)."""

import click

from credits import ledger
from credits.cli.base import Context, cli, fail_on, print_json
from credits.limits import MAX_CREDITS


def _deprecated(old: str, new: str) -> None:
    """Tell the operator, on stderr, that `old` is going and what to run instead."""
    click.echo(f"Deprecated: `{old}` will be removed; use `{new}`.", err=True)


@cli.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("user_id")
@click.argument("amount", type=click.IntRange(min=1, max=MAX_CREDITS))
@click.option(
    "--reference",
    "reference_id",
    required=True,
    help="Your idempotency key for this spend: a retry with it spends nothing more.",
)
@click.pass_obj
@fail_on(ledger.CreditsError)
def consume(obj: Context, user_id: str, amount: int, reference_id: str) -> None:
    """Deprecated: `spend`. Spend AMOUNT credits of USER_ID, soonest-expiring batch first."""
    _deprecated("consume", "spend")
    print_json(ledger.spend(obj.pool, ledger.SpendRequest(user_id, reference_id, amount=amount)))


@cli.command(hidden=True)
@click.argument("user_id")
@click.pass_obj
@fail_on()
def balance(obj: Context, user_id: str) -> None:
    """Deprecated: `account`. Show USER_ID's balance and active batches, in spending order."""
    _deprecated("balance", "account")
    total, batches = ledger.balance(obj.pool, user_id)
    print_json({"user_id": user_id, "balance": total, "batches": batches})
