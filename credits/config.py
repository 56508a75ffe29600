"""Settings of the credits service, read from the environment (and .env)."""

import math
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MIN_SECRET_LENGTH = 16
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


def _text(name: str, text: str) -> str | None:
    """The text as it is, None when empty."""
    return text or None


def _trimmed(name: str, text: str) -> str | None:
    """The text without surrounding spaces and newlines, None when empty.

    Stray spaces and newlines come from copy-paste and .env files, never from intent.
    """
    return text.strip() or None


def _path(name: str, text: str) -> Path:
    """A folder."""
    return Path(text)


def _whole(name: str, text: str) -> int:
    """A whole number, read as gunicorn.conf.py has always read its workers and threads."""
    return int(text)


def _statuses(name: str, text: str) -> tuple[str, ...]:
    """A comma-separated list of subscription statuses."""
    statuses = tuple(s.strip() for s in text.split(","))
    if not all(statuses):
        raise ConfigError(f"{name} must be a comma-separated list of statuses")
    return statuses


def _log_format(name: str, text: str) -> str:
    """One of LOG_FORMATS, in any case."""
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"{name} must be text or json, got {value!r}")
    return value


def _boolean(name: str, text: str) -> bool:
    """true or false, in any case."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false")
    return value == "true"


def _positive(kind: type[int] | type[float], unit: str) -> Read:
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


def _above_margin(name: str, text: str) -> int:
    """A request limit in whole seconds, long enough to leave the margin for the last chunk."""
    limit: int = _positive(int, "a whole number of seconds")(name, text)
    if limit <= CHUNK_MARGIN:
        raise ConfigError(f"{name} must be above {CHUNK_MARGIN} seconds")
    return limit


def _catch_up_days(name: str, text: str) -> int:
    """A whole number of days from 0 (no catch-up) to MAX_CATCH_UP_DAYS."""
    days = text.strip()
    if not (days.isascii() and days.isdigit() and int(days) <= MAX_CATCH_UP_DAYS):
        raise ConfigError(
            f"{name} must be a whole number of days from 0 to {MAX_CATCH_UP_DAYS}, got {text!r}"
        )
    return int(days)


def _public_url(name: str, text: str) -> str | None:
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


# Every setting the service, gunicorn.conf.py and gunicorn read, in the README's order; the
# README's settings table is made from it (settings_table) and a test holds the two together.
SETTINGS = (
    Setting(
        "DATABASE_URL",
        read=_text,
        default=None,
        required="in production",
        meaning="PostgreSQL connection URL (or `key=value` string)",
        field="database_url",
        default_note="embedded PostgreSQL",
    ),
    Setting(
        "CRON_SECRET",
        read=_trimmed,
        default=None,
        required="yes, with `DATABASE_URL` (not for the CLI)",
        meaning=(
            "the bearer secret, one value of at least 16 characters without a comma; "
            "surrounding spaces and newlines are ignored"
        ),
        field="cron_secret",
        default_note="generated in `.credits/cron_secret` on the embedded database",
    ),
    Setting(
        "CRON_SECRET_NEXT",
        read=_trimmed,
        default=None,
        required="no",
        meaning=(
            "the new secret while [rotating](#changing-the-secret-without-downtime), accepted "
            "as well; at least 16 characters"
        ),
        field="cron_secret_next",
    ),
    Setting(
        "QSTASH_CURRENT_SIGNING_KEY",
        read=_trimmed,
        default=None,
        required="no; with the next one",
        meaning=(
            "QStash's current signing key: a request with QStash's valid `Upstash-Signature` "
            "may run the jobs"
        ),
        field="qstash_current_signing_key",
    ),
    Setting(
        "QSTASH_NEXT_SIGNING_KEY",
        read=_trimmed,
        default=None,
        required="no; with the current one",
        meaning="QStash's next signing key (QStash signs with it after a rotation)",
        field="qstash_next_signing_key",
    ),
    Setting(
        "CREDITS_PUBLIC_URL",
        read=_public_url,
        default=None,
        required="with the QStash keys",
        meaning=(
            "the URL QStash calls, up to the routes (`https://credits.example.com`); a signed "
            "request runs only when QStash signed this URL followed by its path and query"
        ),
        field="public_url",
    ),
    Setting(
        "CREDITS_STATUS_MAX_AGE_HOURS",
        read=_positive(float, "a number of hours"),
        default="26",
        required="no",
        meaning="the status route answers 503 when a job's last success is older than this",
        field="status_max_age_hours",
    ),
    Setting(
        "CREDITS_METRICS_TOKEN",
        read=_trimmed,
        default=None,
        required="no",
        meaning=(
            "a bearer token for `GET /metrics` only (the job secrets are accepted there too), "
            "so a scraper never holds a secret that runs the jobs; at least 16 characters"
        ),
        field="metrics_token",
    ),
    Setting(
        "CREDITS_LOG_FORMAT",
        read=_log_format,
        default="text",
        required="no",
        meaning="`text`: readable lines; `json`: one JSON object per line",
        field="log_format",
    ),
    Setting(
        "CREDITS_ELIGIBLE_STATUSES",
        read=_statuses,
        default="active",
        required="no",
        meaning="comma-separated subscription statuses that are granted, e.g. `active,trialing`",
        field="eligible_statuses",
    ),
    Setting(
        "CREDITS_DB_TIMEOUT",
        read=_positive(float, "a number of seconds"),
        default="5",
        required="no",
        meaning="seconds to wait for a database connection before answering 503",
        field="db_timeout",
    ),
    Setting(
        "CREDITS_APPLY_SCHEMA",
        read=_boolean,
        default="true",
        required="no",
        meaning=(
            "`false` for a service running as a role that may not create tables ([the "
            "database contract](docs/DATABASE.md)): it then only checks that the schema "
            "is there"
        ),
        field="apply_schema",
    ),
    Setting(
        # Fits the shortest caller's limit (cron-job.org, 30 s).
        "CREDITS_TIME_BUDGET",
        read=_positive(float, "a number of seconds"),
        default="8",
        required="no",
        meaning=(
            "seconds a job call works before it stops starting chunks and answers "
            '`"complete": false` ([Time limits](#time-limits))'
        ),
        field="time_budget",
    ),
    Setting(
        "CREDITS_CHUNK_SIZE",
        read=_positive(int, "a count"),
        default="25000",
        required="no",
        meaning="keys (subscriptions, users) a chunk transaction covers",
        field="chunk_size",
    ),
    Setting(
        # A run's chunks go this many at a time, each stripe of keys on a connection of its own.
        "CREDITS_PARALLEL_CHUNKS",
        read=_positive(int, "a count"),
        default="2",
        required="no",
        meaning="stripes of keys a run works side by side, each on its own database connection",
        field="parallel_chunks",
    ),
    Setting(
        # A platform outage of a week loses no month's credits.
        "CREDITS_CATCH_UP_DAYS",
        read=_catch_up_days,
        default="7",
        required="no",
        meaning=(
            "days a grant run looks back across a month's end for due days missed since the "
            "last completed run ([which months a run covers]"
            "(docs/ENDPOINTS.md#get-apijobscreditsgrant)), 0 to 28"
        ),
        field="catch_up_days",
    ),
    Setting(
        "CREDITS_DATA_DIR",
        read=_path,
        default=".credits",
        required="no",
        meaning="the embedded PostgreSQL's data and the generated local secret",
        field="data_dir",
    ),
    Setting(
        "WEB_CONCURRENCY",
        read=_whole,
        default="2",
        required="no",
        meaning=(
            "gunicorn workers; each opens up to `CREDITS_PARALLEL_CHUNKS` + 2 database "
            "connections ([deploy/paas](deploy/paas/README.md#database-connections))"
        ),
        default_note="Heroku's Python buildpack sets it from the dyno size",
    ),
    Setting(
        "GUNICORN_THREADS",
        read=_whole,
        default="4",
        required="no",
        meaning=(
            "threads per worker: requests a worker answers at once (`/healthz` while a job "
            "runs); they share the worker's connections"
        ),
    ),
    Setting(
        "GUNICORN_TIMEOUT",
        read=_above_margin,
        default="300",
        required="no",
        meaning=(
            "seconds before gunicorn kills a worker that is still in a request; a call's "
            "budget may be at most this less 30"
        ),
    ),
    Setting(
        "CREDITS_MAX_DURATION",
        read=_above_margin,
        default=None,
        required="no; instead of `GUNICORN_TIMEOUT` where the platform runs the app (Vercel)",
        meaning=(
            "the platform's limit on one request in seconds (Vercel: the function's "
            "`maxDuration`); a call's budget may be at most this less 30. Setting both, or "
            "this one under gunicorn, stops the service at startup"
        ),
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        read=None,
        default=None,
        required="no; with several gunicorn workers",
        meaning=(
            "a folder where every worker writes its request counts, so each `/metrics` scrape "
            "adds them all up; emptied when gunicorn starts "
            "([deploy/monitoring](deploy/monitoring/README.md))"
        ),
        default_note="each scrape counts one worker's requests",
    ),
    Setting(
        "PORT",
        read=None,
        default=None,
        required="no",
        meaning=(
            "when set (as on a PaaS), gunicorn listens on `0.0.0.0:$PORT` instead of "
            "`127.0.0.1:8000`"
        ),
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def value_of(name: str, values: Mapping[str, str]) -> Any:
    """The value of the setting so named in environment-style values (gunicorn.conf.py)."""
    return _BY_NAME[name].value(values)


def settings_table() -> str:
    """The README's settings table, made from SETTINGS."""
    head = ["| name | required | default | meaning |", "| --- | --- | --- | --- |"]
    return "\n".join(head + [s.row() for s in SETTINGS])


@dataclass(frozen=True)
class Settings:
    """What the service and its CLI need to run."""

    database_url: str | None
    cron_secret: str | None
    cron_secret_next: str | None
    qstash_current_signing_key: str | None
    qstash_next_signing_key: str | None
    public_url: str | None
    status_max_age_hours: float
    metrics_token: str | None
    log_format: str
    eligible_statuses: tuple[str, ...]
    db_timeout: float
    apply_schema: bool
    time_budget: float
    chunk_size: int
    parallel_chunks: int
    catch_up_days: int
    data_dir: Path
    max_budget: float

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> "Settings":
        """Build settings from environment-style names (DATABASE_URL, CRON_SECRET, ...)."""
        fields = {s.field: s.value(values) for s in SETTINGS if s.field is not None}
        if (fields["qstash_current_signing_key"] is None) != (
            fields["qstash_next_signing_key"] is None
        ):
            # QStash signs with either key while it rotates them; one alone would fail later.
            raise ConfigError(
                "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY must be set together"
            )
        if fields["qstash_current_signing_key"] is not None and fields["public_url"] is None:
            # A signed request runs only when QStash signed this URL followed by the request's
            # path and query string, so the URL callers use must be known whatever proxy is in
            # front.
            raise ConfigError(
                "CREDITS_PUBLIC_URL must be set with the QStash signing keys: the URL QStash "
                "calls, up to the routes (e.g. https://credits.example.com)"
            )
        limit_name, limit = request_limit(values)
        max_budget = limit - CHUNK_MARGIN
        if fields["time_budget"] > max_budget:
            raise ConfigError(
                f"CREDITS_TIME_BUDGET ({fields['time_budget']:g} s) must leave {CHUNK_MARGIN} s "
                f"before {limit_name} ({limit:g} s) for the chunk in flight"
            )
        return cls(**fields, max_budget=max_budget)

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is set and the service runs its own PostgreSQL."""
        return self.database_url is None

    @property
    def qstash_enabled(self) -> bool:
        """True when QStash's signing keys are set, so a signed request may run a job."""
        return self.qstash_current_signing_key is not None

    @property
    def local_secret_file(self) -> Path:
        """Where a local run keeps the secret it generated for itself."""
        return self.data_dir / "cron_secret"


def request_limit(values: Mapping[str, str]) -> tuple[str, int]:
    """The setting that bounds one request, and its seconds: the platform's, else gunicorn's."""
    if values.get("CREDITS_MAX_DURATION") is None:
        return "GUNICORN_TIMEOUT", worker_timeout(values)
    if values.get("GUNICORN_TIMEOUT") is not None:
        # Two limits for one request: the service could not tell which one cuts it off.
        raise ConfigError(
            "set GUNICORN_TIMEOUT where gunicorn runs the service, or CREDITS_MAX_DURATION "
            "where the platform runs it (Vercel), not both"
        )
    return "CREDITS_MAX_DURATION", value_of("CREDITS_MAX_DURATION", values)


def worker_timeout(values: Mapping[str, str]) -> int:
    """gunicorn's worker timeout, in seconds: GUNICORN_TIMEOUT (read by gunicorn.conf.py too)."""
    if values.get("CREDITS_MAX_DURATION") is not None:
        # A budget sized for a platform's limit would outlive gunicorn's worker.
        raise ConfigError(
            "CREDITS_MAX_DURATION is for a platform that runs the service itself (Vercel); "
            "under gunicorn set GUNICORN_TIMEOUT instead"
        )
    timeout: int = value_of("GUNICORN_TIMEOUT", values)
    return timeout


def cron_secrets(settings: Settings) -> tuple[str, ...]:
    """The bearer secrets the job routes accept (one, or two while rotating); fails closed.

    CRON_SECRET is one secret, exactly what Vercel Cron sends; CRON_SECRET_NEXT holds the new
    one while the callers move to it. A run on the embedded database (a local try-out) that
    has no CRON_SECRET generates one and keeps it in the data folder; anywhere else a missing
    secret is a startup error. Errors name the setting, never the secret.
    """
    value = settings.cron_secret
    if value is None and settings.embedded:
        value = _local_secret(settings.local_secret_file)
    if value is None:
        raise ConfigError(
            "CRON_SECRET is not set: the job routes never run without one. "
            "Generate one with: python -c 'import secrets; print(secrets.token_hex(16))'"
        )
    if "," in value:
        # Once "current,next"; Vercel sends the value whole, so a list here would lock it out.
        raise ConfigError(
            "CRON_SECRET holds a comma: it is one secret now. While rotating, put the new "
            "secret in CRON_SECRET_NEXT and keep the current one in CRON_SECRET"
        )
    accepted = (value,) if settings.cron_secret_next is None else (value, settings.cron_secret_next)
    for name, secret in zip(("CRON_SECRET", "CRON_SECRET_NEXT"), accepted, strict=False):
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long")
    return accepted


def _local_secret(path: Path) -> str | None:
    """Read the local secret, creating it once; several workers may race to create it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, draft = tempfile.mkstemp(dir=path.parent)  # created with mode 0600
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(16))
        try:
            os.link(draft, path)  # atomic: the first worker's secret wins
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    return path.read_text(encoding="ascii").strip() or None


# --- GET /metrics (its token) ---
def metrics_tokens(settings: Settings, secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The bearer tokens /metrics accepts: the job secrets, and CREDITS_METRICS_TOKEN if set."""
    token = settings.metrics_token
    if token is None:
        return secrets
    if len(token) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"CREDITS_METRICS_TOKEN must be at least {MIN_SECRET_LENGTH} characters long"
        )
    return (*secrets, token)
