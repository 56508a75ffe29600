"""A run's parameters as a caller writes them (the run date, the time budget), read once.

The routes read them from the query string and the command line from its options; a bad one
is an InvalidParameter, refused before anything runs.
"""

import re
from collections.abc import Callable
from datetime import date

from credits.config import Settings

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A budget as a caller writes one: "25", "7.5".
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class InvalidParameter(ValueError):
    """A run was asked for with a parameter it cannot take; nothing was done."""


def parse_run_date(text: str | None, today: Callable[[], date]) -> date:
    """The run date from `YYYY-MM-DD`: a past or present UTC date, never a future one.

    today() is the service's date (the database's: credits.db.today), asked only once the text
    is a date, so a malformed one is refused without reaching the database.
    """
    if text is None:
        return today()
    if not _ISO_DATE.fullmatch(text):
        raise InvalidParameter(f"date must be a date as YYYY-MM-DD, got {text!r}")
    try:
        run_date = date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"date {text!r} is not a calendar date") from None
    now = today()
    if run_date > now:
        raise InvalidParameter(f"date {text} is in the future (today is {now} UTC)")
    return run_date


def parse_budget(text: str | None, settings: Settings) -> float:
    """A run's time budget in seconds: the setting's, or a request's own up to the maximum."""
    if text is None:
        return settings.time_budget
    # Plain decimal digits only: float() also takes "2_7_0", "1e2", " 8" and other scripts' digits.
    budget = float(text) if PLAIN_DECIMAL.fullmatch(text) else None
    if budget is None or not 0 < budget <= settings.max_budget:
        raise InvalidParameter(
            f"budget must be a number of seconds above 0 and at most {settings.max_budget:g} "
            f"(the worker timeout less a margin for the last chunk), got {text!r}"
        )
    return budget
