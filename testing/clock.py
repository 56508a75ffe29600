"""Run the tests with the service's clock on another day of the month, to show calendar bugs.

The service's clock is its database's (credits.db.now: the jobs' default date, the SQL
functions' now()), so moving the clock of the embedded PostgreSQL the tests start moves the
service's. A test that holds only on some days of a month (a subscription "due today" that
starts on the 10th, a date the test takes from its own clock) then fails before the calendar
finds it:

    TEST_CLOCK=2028-02-29 .venv/bin/pytest        # one day
    python -m testing.clock -- .venv/bin/pytest   # the next 1st, 28th, 29 February and 31st

The embedded server is started under libfaketime (Debian's `faketime`) with an offset from the
real clock to that day at 06:00 UTC, so its clock runs on from there and a run does not cross
midnight. Its waits are kept from libfaketime (testing/waits.c, built with cc), so its lock,
statement and deadlock timeouts fire as on the real clock. A server started elsewhere
(TEST_DATABASE_URL) keeps its own clock, so it is refused.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import click

# The date the embedded server's clock starts on (YYYY-MM-DD); unset: the real clock.
VARIABLE = "TEST_CLOCK"
# The days the command moves to: the first of a month, short and long month ends, the leap day.
DAYS = ("1", "28", "02-29", "31")
START = time(6, 0)
LIBRARY = "faketime/libfaketime.so.1"


class ClockError(Exception):
    """The clock cannot be moved as asked; nothing was started."""


def next_day(day: str, after: date) -> date:
    """The first date after `after` that is day `day` of a month ("31") or a month-day ("02-29")."""
    month, _, day_of_month = day.rpartition("-")
    for ahead in range(1, 8 * 366):  # every month-day that exists comes within eight years
        candidate = after + timedelta(days=ahead)
        if candidate.strftime("%m-%d" if month else "%d") == day.zfill(5 if month else 2):
            return candidate
    raise ValueError(f"{day!r} is not a day (31) or a month-day (02-29)")


def moved_to() -> date | None:
    """The day TEST_CLOCK asks the embedded server's clock to start on, or None."""
    text = os.environ.get(VARIABLE)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ClockError(f"{VARIABLE} must be a date as YYYY-MM-DD, got {text!r}") from None


def waits_library() -> str:
    """testing/waits.c built once (per source) into the temporary directory: its path."""
    source = Path(__file__).with_name("waits.c")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    library = Path(tempfile.gettempdir()) / f"credits-test-waits-{digest}.so"
    if not library.exists():
        compiler = shutil.which("cc")
        if compiler is None:
            raise ClockError(f"{VARIABLE} needs a C compiler, cc (Debian: apt-get install gcc)")
        built = library.with_suffix(f".{os.getpid()}.tmp")
        command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClockError(f"cc could not build {source.name}: {result.stderr.strip()}")
        built.replace(library)  # whole or not at all, whatever runs beside this one
    return str(library)


@contextmanager
def server_clock() -> Iterator[None]:
    """While a server is started in this block, its clock starts on TEST_CLOCK's day, if set."""
    day = moved_to()
    if day is None:
        yield
        return
    if os.environ.get("TEST_DATABASE_URL"):
        raise ClockError(
            f"{VARIABLE} moves the embedded PostgreSQL's clock, and TEST_DATABASE_URL is set: "
            "a server started elsewhere keeps its own clock; unset one of them"
        )
    libraries = glob.glob(f"/usr/lib/{LIBRARY}") + glob.glob(f"/usr/lib/*/{LIBRARY}")
    if not libraries:
        raise ClockError(f"{VARIABLE} needs libfaketime (Debian: apt-get install faketime)")
    offset = datetime.combine(day, START, timezone.utc) - datetime.now(timezone.utc)
    # The waits first, so PostgreSQL's own timeouts keep firing (testing/waits.c).
    preload = f"{waits_library()} {libraries[0]}"
    moved = {"LD_PRELOAD": preload, "FAKETIME": f"{round(offset.total_seconds()):+d}"}
    kept = {name: os.environ.get(name) for name in moved}
    os.environ.update(moved)  # what the server's processes inherit; this one is not moved
    try:
        yield
    finally:
        for name, value in kept.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


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
    """Run COMMAND (the tests) once with TEST_CLOCK on each day; stop at the first failure."""
    if os.environ.get("TEST_DATABASE_URL"):
        raise click.ClickException(
            "TEST_DATABASE_URL is set: a server started elsewhere keeps its own clock; unset it, "
            "so the tests start an embedded PostgreSQL on the moved clock"
        )
    for day in days:
        try:
            moved = next_day(day, date.today())
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--day") from None
        click.echo(f"== {VARIABLE}={moved} (from {START:%H:%M} UTC): {' '.join(command)}", err=True)
        status = subprocess.run(command, env={**os.environ, VARIABLE: moved.isoformat()}).returncode
        if status != 0:
            click.echo(f"failed with {VARIABLE}={moved}", err=True)
            sys.exit(status)


if __name__ == "__main__":
    main()
