"""The commands' old names, kept for scripts: each says on stderr what replaces it, then works
as it always has (docs/CLI.md, "Deprecated names")."""

from datetime import timezone

import click

from credits import ledger
from credits.cli.base import Context, cli, fail_on
from credits.limits import MAX_CREDITS


def _deprecated(old: str, new: str) -> None:
    """Tell the operator, on stderr, that `old` is going and what to run instead."""
    click.echo(f"Deprecated: `{old}` will be removed; use `{new}` (JSON output).", err=True)


@cli.command(hidden=True)
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
    spent = ledger.spend(obj.pool, ledger.SpendRequest(user_id, reference_id, amount=amount))
    note = " (already spent earlier with this reference)" if spent["replayed"] else ""
    click.echo(f"Spent {amount} credits of {user_id}{note}. Balance: {spent['balance']}")


@cli.command(hidden=True)
@click.argument("user_id")
@click.pass_obj
@fail_on()
def balance(obj: Context, user_id: str) -> None:
    """Deprecated: `account`. Show USER_ID's balance and active batches, in spending order."""
    _deprecated("balance", "account")
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
