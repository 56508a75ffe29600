"""Run a command with the clock moved to another day of the month, to show calendar bugs early.

A test that holds only on some days of a month (a subscription "due today" that starts on the
10th, a batch that lapsed by the real date) fails here before the calendar finds it:

    python -m testing.clock -- .venv/bin/pytest

runs the command once with every process's clock at the next 1st, 28th, 29 February and 31st
(06:00 UTC, so a run does not cross midnight), and exits with the first failure's status. The
clock is moved by libfaketime (Debian's `faketime`) as an offset, so it keeps running and every
process it starts agrees on it: the tests, the service, the embedded PostgreSQL (the jobs' and
the SQL functions' now()) and the Node harnesses. Processes a test starts with an environment of
its own must keep the clock's variables: `environment(...)` gives them.
"""

import os
import shutil
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone

import click

# What libfaketime reads; a process started without them runs on the real clock.
CLOCK_VARIABLES = ("LD_PRELOAD", "FAKETIME")
# The days a run moves to: the first of a month, month ends short and long, and the leap day.
DAYS = ("1", "28", "02-29", "31")
START = time(6, 0)


def environment(**values: str) -> dict[str, str]:
    """A bare environment for a child process (PATH and `values`) on this process's clock."""
    kept = {name: os.environ[name] for name in ("PATH", *CLOCK_VARIABLES) if name in os.environ}
    return {**kept, **values}


def next_day(day: str, after: date) -> date:
    """The first date after `after` that is day `day` of a month ("31") or a month-day ("02-29")."""
    month, _, day_of_month = day.rpartition("-")
    for ahead in range(1, 8 * 366):  # every month-day that exists comes within eight years
        candidate = after + timedelta(days=ahead)
        if candidate.strftime("%m-%d" if month else "%d") == day.zfill(5 if month else 2):
            return candidate
    raise ValueError(f"{day!r} is not a day (31) or a month-day (02-29)")


def offset_to(day: date, now: datetime) -> int:
    """Seconds from `now` to `day` at START UTC: the offset libfaketime adds to every clock."""
    return round((datetime.combine(day, START, timezone.utc) - now).total_seconds())


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--day",
    "days",
    multiple=True,
    default=DAYS,
    show_default=True,
    help="A day of the month (31) or a month-day (02-29); the next one after today is used.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def main(days: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run COMMAND once on each day's clock; stop at the first that fails."""
    faketime = shutil.which("faketime")
    if faketime is None:
        raise click.ClickException("faketime is not installed (Debian: apt-get install faketime)")
    for day in days:
        now = datetime.now(timezone.utc)
        try:
            moved = next_day(day, now.date())
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--day") from None
        click.echo(f"== the clock at {moved} {START:%H:%M} UTC: {' '.join(command)}", err=True)
        status = subprocess.run(
            [faketime, "-f", f"{offset_to(moved, now):+d}", *command]
        ).returncode
        if status != 0:
            click.echo(f"failed with the clock at {moved}", err=True)
            sys.exit(status)


if __name__ == "__main__":
    main()
