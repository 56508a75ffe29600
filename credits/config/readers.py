"""How a setting's text becomes its value: each reader checks it and names the setting when it
is wrong, so the service refuses to start on a bad value."""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOG_FORMATS = ("text", "json")
# Time limits, in seconds, that must agree (README, "Time limits"): a run stops starting chunks
# when its budget is spent, and whatever runs the app cuts a request off at its limit: gunicorn
# kills a worker after GUNICORN_TIMEOUT, a platform that runs the app itself (Vercel) stops the
# function after its maximum duration, CREDITS_MAX_DURATION. The default budget fits the
# shortest caller's limit (cron-job.org, 30 s); a request may ask for more, up to that limit
# less a margin for the chunk in flight.
CHUNK_MARGIN = 30
# A grant pass looks back at most this many days for due days missed since the last completed
# pass, so the window reaches back into the previous month only (credits.due_grants).
MAX_CATCH_UP_DAYS = 28
# How a setting's text becomes its value: (name, text) -> value, or a ConfigError naming it.
Read = Callable[[str, str], Any]


class ConfigError(Exception):
    """A setting is missing or wrong; the service refuses to start."""


@dataclass(frozen=True)
class Setting:
    """One setting: its name, how its text is read and checked, its default, what it means."""

    name: str
    read: Read | None  # None: read by gunicorn itself, never by the service
    default: str | None  # the text an unset setting reads as; None: unset means none
    required: str  # when it must be set, in the README's words
    meaning: str
    field: str | None = None  # the Settings attribute it fills, if any
    default_note: str = ""  # what the README adds on the default

    def value(self, values: Mapping[str, str]) -> Any:
        """This setting's value in environment-style values, its default's when unset."""
        text = values.get(self.name, self.default)
        if text is None or self.read is None:
            return None
        return self.read(self.name, text)

    def row(self) -> str:
        """This setting's row of the README's settings table."""
        default = [] if self.default is None else [f"`{self.default}`"]
        if self.default_note:
            default.append(f"({self.default_note})" if default else self.default_note)
        return f"| `{self.name}` | {self.required} | {' '.join(default) or '—'} | {self.meaning} |"


def plain_text(name: str, text: str) -> str | None:
    """The text as it is, None when empty."""
    return text or None


def trimmed_text(name: str, text: str) -> str | None:
    """The text without surrounding spaces and newlines, None when empty.

    Stray spaces and newlines come from copy-paste and .env files, never from intent.
    """
    return text.strip() or None


def folder(name: str, text: str) -> Path:
    """A folder."""
    return Path(text)


def whole_number(name: str, text: str) -> int:
    """A whole number, read as gunicorn.conf.py has always read its workers and threads."""
    return int(text)


def status_list(name: str, text: str) -> tuple[str, ...]:
    """A comma-separated list of subscription statuses."""
    statuses = tuple(s.strip() for s in text.split(","))
    if not all(statuses):
        raise ConfigError(f"{name} must be a comma-separated list of statuses")
    return statuses


def log_format(name: str, text: str) -> str:
    """One of LOG_FORMATS, in any case."""
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"{name} must be text or json, got {value!r}")
    return value


def boolean(name: str, text: str) -> bool:
    """true or false, in any case."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false")
    return value == "true"


def positive(kind: type[int] | type[float], unit: str) -> Read:
    """A reader of a number above 0 of this kind; unit names it in the error."""

    def read(name: str, text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name} must be {unit} above 0, got {text!r}")
        return value

    return read


def above_margin(name: str, text: str) -> int:
    """A request limit in whole seconds, long enough to leave the margin for the last chunk."""
    limit: int = positive(int, "a whole number of seconds")(name, text)
    if limit <= CHUNK_MARGIN:
        raise ConfigError(f"{name} must be above {CHUNK_MARGIN} seconds")
    return limit


def catch_up_days(name: str, text: str) -> int:
    """A whole number of days from 0 (no catch-up) to MAX_CATCH_UP_DAYS."""
    days = text.strip()
    if not (days.isascii() and days.isdigit() and int(days) <= MAX_CATCH_UP_DAYS):
        raise ConfigError(
            f"{name} must be a whole number of days from 0 to {MAX_CATCH_UP_DAYS}, got {text!r}"
        )
    return int(days)


def public_url(name: str, text: str) -> str | None:
    """An http(s) URL without a trailing slash, None when empty."""
    value = text.strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} must be an http(s) URL without a query string, "
            f"e.g. https://credits.example.com, got {value!r}"
        )
    return value


def webhook_url(name: str, text: str) -> str | None:
    """An http(s) URL the events are posted to, None when empty."""
    value = text.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def webhook_secret(name: str, text: str) -> str | None:
    """A Standard Webhooks secret (whsec_ and base64), checked by the library that signs."""
    # Imported here: only a service that delivers events loads the library.
    from standardwebhooks.webhooks import Webhook

    value = text.strip()
    if not value:
        return None
    try:
        Webhook(value)
    except Exception:
        raise ConfigError(
            f"{name} must be a Standard Webhooks secret: whsec_ followed by base64 "
            "(e.g. from `python -m credits webhook-secret`)"
        ) from None
    return value
