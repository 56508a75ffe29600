"""The events outbox's commands: list it, send given-up events again, deliver now, make a secret."""

import base64
import secrets
import uuid

import click

from credits import delivery_runs, events
from credits.cli.base import Context, cli, fail_on, print_json

# The most events `events list` prints; a larger --limit is a usage error.
MAX_LISTED = 10_000


@cli.group("events")
def events_group() -> None:
    """The events outbox (docs/EVENTS.md)."""


@events_group.command("list")
@click.option(
    "--state",
    type=click.Choice(["all", "pending", "given-up"]),
    default="all",
    show_default=True,
    help="pending: not delivered yet; given-up: out of attempts, see `events resend`",
)
@click.option("--after", "after_id", type=click.IntRange(min=0), default=0, help="an event id")
@click.option("--limit", type=click.IntRange(1, MAX_LISTED), default=100, show_default=True)
@click.pass_obj
@fail_on()
def list_events(obj: Context, state: str, after_id: int, limit: int) -> None:
    """Print the outbox's events after an id, oldest first, with their delivery attempts."""
    print_json(events.list_events(obj.pool, state, after_id, limit))


@events_group.command("resend")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all-given-up", is_flag=True, help="every given-up event")
@click.pass_obj
@fail_on()
def resend(obj: Context, ids: tuple[int, ...], all_given_up: bool) -> None:
    """Put given-up events back in the queue, by id (or all of them), to be delivered again."""
    if bool(ids) == all_given_up:
        raise click.UsageError("name the event ids to resend, or --all-given-up")
    print_json({"resent": events.resend(obj.pool, None if all_given_up else list(ids))})


@cli.command("deliver")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), help="seconds")
@click.pass_obj
@fail_on()
def deliver(obj: Context, budget: float | None) -> None:
    """Post the due events to CREDITS_WEBHOOK_URL now (and prune past the retention), as a run
    of job deliver (see `runs`)."""
    job_id = uuid.uuid4()
    done = delivery_runs.deliver(obj.pool, obj.settings, budget, job_id)
    print_json({**done.body(), "jobId": str(job_id)})


@cli.command("webhook-secret")
def webhook_secret() -> None:
    """Print a new CREDITS_WEBHOOK_SECRET (whsec_ and 32 random bytes in base64)."""
    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
