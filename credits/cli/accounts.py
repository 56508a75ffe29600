"""The credits commands: one-off grants, packs, the sign-up bonus, spending, reversals, voids,
the account and the statement, each one call of credits.ledger printed as JSON."""

import json
from datetime import datetime, timezone
from typing import Any

import click

from credits import ledger
from credits.cli.base import BadInput, Context, cli, fail_on, print_json, reference_option

# --expires-at: a date, or a date and time (UTC unless it says its offset).
_ISO_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


# An amount such as -5 is an argument for the amount check (exit 2), not an unknown option.
NUMBERS_AS_ARGUMENTS = {"ignore_unknown_options": True}


@cli.command(context_settings=NUMBERS_AS_ARGUMENTS)
@click.argument("user_id")
@click.argument("amount", type=int)
@click.option(
    "--source", required=True, help="purchase, bonus, registration, promotion or adjustment."
)
@reference_option("Your idempotency key for this grant: a retry grants nothing more.")
@click.option("--validity-days", type=int, help="Expire this many days from now.")
@click.option("--expires-at", metavar="ISO", type=click.DateTime(_ISO_FORMATS), help="Or then.")
@click.pass_obj
@fail_on(ledger.Refused)
def add(obj: Context, /, user_id: str, amount: int, **options: Any) -> None:
    """Grant USER_ID a one-off batch of AMOUNT credits (never expiring unless told)."""
    options["expires_at"] = _utc(options["expires_at"])
    print_json(ledger.grant(obj.pool, ledger.GrantRequest(user_id, amount, **options)))


@cli.command()
@click.argument("user_id")
@click.argument("package_id", metavar="PACKAGE")
@reference_option("The purchase's reference: the pack is granted once per purchase.")
@click.pass_obj
@fail_on(ledger.Refused)
def buy(obj: Context, user_id: str, package_id: str, reference_id: str) -> None:
    """Grant USER_ID the credit pack PACKAGE bought under a purchase reference."""
    print_json(ledger.buy(obj.pool, user_id, package_id, reference_id))


@cli.command()
@click.argument("user_id")
@click.pass_obj
@fail_on(ledger.Refused)
def bonus(obj: Context, user_id: str) -> None:
    """Grant USER_ID the sign-up bonus ([registration]), once whatever is replayed."""
    print_json(ledger.registration_bonus(obj.pool, user_id))


@cli.command(context_settings=NUMBERS_AS_ARGUMENTS)
@click.argument("user_id")
@click.argument("amount", type=int, required=False)
@click.option("--service", help="Spend this service's cost (times --quantity) instead.")
@click.option("--quantity", type=int, default=1, show_default=True, help="Uses of --service.")
@reference_option("Your idempotency key for this spend: a retry spends nothing more.")
@click.option("--metadata", metavar="JSON", help="A JSON object kept with the spend.")
@click.pass_obj
@fail_on(ledger.Refused)
def spend(obj: Context, /, user_id: str, metadata: str | None, **options: Any) -> None:
    """Spend AMOUNT credits of USER_ID, or --service NAME's cost, soonest-expiring first."""
    if (options["amount"] is None) == (options["service"] is None):
        raise BadInput("give AMOUNT or --service, not both")
    request = ledger.SpendRequest(user_id, metadata=_json_object(metadata), **options)
    print_json(ledger.spend(obj.pool, request))


@cli.command()
@click.argument("user_id")
@reference_option("The reference of the spend to reverse.")
@click.pass_obj
@fail_on(ledger.Refused)
def reverse(obj: Context, user_id: str, reference_id: str) -> None:
    """Give USER_ID's spend back to the batches it came from (once)."""
    print_json(ledger.reverse(obj.pool, user_id, reference_id))


@cli.command()
@click.argument("reference_id", metavar="REF")
@click.pass_obj
@fail_on(ledger.Refused)
def void(obj: Context, reference_id: str) -> None:
    """Take back what remains of the one-off grant (or pack) granted under REF."""
    print_json(ledger.void(obj.pool, reference_id))


@cli.command()
@click.argument("user_id")
@click.pass_obj
@fail_on(ledger.Refused)
def account(obj: Context, user_id: str) -> None:
    """USER_ID's balance, spendable credits, next expiry and next subscription grant."""
    print_json(ledger.account(obj.pool, user_id, obj.settings.eligible_statuses))


@cli.command()
@click.argument("user_id")
@click.option("--limit", type=int, default=50, show_default=True, help="Entries (1 to 100).")
@click.option("--before", type=int, metavar="CURSOR", help="next_cursor of the page before.")
@click.pass_obj
@fail_on(ledger.Refused)
def statement(obj: Context, user_id: str, limit: int, before: int | None) -> None:
    """USER_ID's ledger entries, newest first, one page at a time."""
    print_json(ledger.statement(obj.pool, user_id, limit=limit, before=before))


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
