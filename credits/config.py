"""Settings of the credits service, read from the environment (and .env)."""

import math
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MIN_SECRET_LENGTH = 16
LOG_FORMATS = ("text", "json")

# Time limits, in seconds, that must agree (README, "Time limits"): a run stops starting chunks
# when its budget is spent, and whatever runs the app cuts a request off at its limit: gunicorn
# kills a worker after GUNICORN_TIMEOUT, a platform that runs the app itself (Vercel) stops the
# function after its maximum duration, CREDITS_MAX_DURATION. The default budget fits the
# shortest caller's limit (cron-job.org, 30 s); a request may ask for more, up to that limit
# less a margin for the chunk in flight.
DEFAULT_TIME_BUDGET = 8
DEFAULT_WORKER_TIMEOUT = 300
CHUNK_MARGIN = 30
DEFAULT_CHUNK_SIZE = 25_000
# A run's chunks go this many at a time, each stripe of keys on a connection of its own.
DEFAULT_PARALLEL_CHUNKS = 2
# A grant pass looks back this many days for due days missed since the last completed pass,
# across a month's end: a platform outage of a week loses no month's credits. At most 28, so
# the window reaches back into the previous month only (credits.due_grants).
DEFAULT_CATCH_UP_DAYS = 7
MAX_CATCH_UP_DAYS = 28


class ConfigError(Exception):
    """A setting is missing or wrong; the service refuses to start."""


@dataclass(frozen=True)
class Settings:
    """What the service and its CLI need to run."""

    database_url: str | None
    cron_secret: str | None
    eligible_statuses: tuple[str, ...]
    data_dir: Path
    db_timeout: float
    chunk_size: int
    parallel_chunks: int
    time_budget: float
    max_budget: float
    log_format: str = "text"
    status_max_age_hours: float = 26.0
    qstash_current_signing_key: str | None = None
    qstash_next_signing_key: str | None = None
    public_url: str | None = None
    apply_schema: bool = True
    cron_secret_next: str | None = None
    catch_up_days: int = DEFAULT_CATCH_UP_DAYS

    @classmethod
    def from_mapping(cls, values):
        """Build settings from environment-style names (DATABASE_URL, CRON_SECRET, ...)."""
        statuses = tuple(
            s.strip() for s in values.get("CREDITS_ELIGIBLE_STATUSES", "active").split(",")
        )
        if not all(statuses):
            raise ConfigError(
                "CREDITS_ELIGIBLE_STATUSES must be a comma-separated list of statuses"
            )
        db_timeout = _positive(values, "CREDITS_DB_TIMEOUT", 5, float, "a number of seconds")
        chunk_size = _positive(values, "CREDITS_CHUNK_SIZE", DEFAULT_CHUNK_SIZE, int, "a count")
        parallel_chunks = _positive(
            values, "CREDITS_PARALLEL_CHUNKS", DEFAULT_PARALLEL_CHUNKS, int, "a count"
        )
        time_budget = _positive(
            values, "CREDITS_TIME_BUDGET", DEFAULT_TIME_BUDGET, float, "a number of seconds"
        )
        limit_name, limit = request_limit(values)
        max_budget = limit - CHUNK_MARGIN
        if time_budget > max_budget:
            raise ConfigError(
                f"CREDITS_TIME_BUDGET ({time_budget:g} s) must leave {CHUNK_MARGIN} s before "
                f"{limit_name} ({limit:g} s) for the chunk in flight"
            )
        log_format = values.get("CREDITS_LOG_FORMAT", "text").strip().lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"CREDITS_LOG_FORMAT must be text or json, got {log_format!r}")
        max_age = _positive(values, "CREDITS_STATUS_MAX_AGE_HOURS", 26, float, "a number of hours")
        current_key = (values.get("QSTASH_CURRENT_SIGNING_KEY") or "").strip() or None
        next_key = (values.get("QSTASH_NEXT_SIGNING_KEY") or "").strip() or None
        if (current_key is None) != (next_key is None):
            # QStash signs with either key while it rotates them; one alone would fail later.
            raise ConfigError(
                "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY must be set together"
            )
        public_url = _public_url(values.get("CREDITS_PUBLIC_URL"), qstash=current_key is not None)
        catch_up_days = _catch_up_days(values)
        apply_schema = values.get("CREDITS_APPLY_SCHEMA", "true").strip().lower()
        if apply_schema not in ("true", "false"):
            raise ConfigError("CREDITS_APPLY_SCHEMA must be true or false")
        return cls(
            database_url=values.get("DATABASE_URL") or None,
            # Stray spaces and newlines come from copy-paste and .env files, never from intent.
            cron_secret=(values.get("CRON_SECRET") or "").strip() or None,
            cron_secret_next=(values.get("CRON_SECRET_NEXT") or "").strip() or None,
            eligible_statuses=statuses,
            data_dir=Path(values.get("CREDITS_DATA_DIR", ".credits")),
            db_timeout=db_timeout,
            chunk_size=chunk_size,
            parallel_chunks=parallel_chunks,
            time_budget=time_budget,
            max_budget=max_budget,
            log_format=log_format,
            status_max_age_hours=max_age,
            qstash_current_signing_key=current_key,
            qstash_next_signing_key=next_key,
            public_url=public_url,
            apply_schema=apply_schema == "true",
            catch_up_days=catch_up_days,
        )

    @property
    def embedded(self):
        """True when no DATABASE_URL is set and the service runs its own PostgreSQL."""
        return self.database_url is None

    @property
    def qstash_enabled(self):
        """True when QStash's signing keys are set, so a signed request may run a job."""
        return self.qstash_current_signing_key is not None

    @property
    def local_secret_file(self):
        """Where a local run keeps the secret it generated for itself."""
        return self.data_dir / "cron_secret"


def request_limit(values):
    """The setting that bounds one request, and its seconds: the platform's, else gunicorn's."""
    if values.get("CREDITS_MAX_DURATION") is None:
        return "GUNICORN_TIMEOUT", worker_timeout(values)
    if values.get("GUNICORN_TIMEOUT") is not None:
        # Two limits for one request: the service could not tell which one cuts it off.
        raise ConfigError(
            "set GUNICORN_TIMEOUT where gunicorn runs the service, or CREDITS_MAX_DURATION "
            "where the platform runs it (Vercel), not both"
        )
    return "CREDITS_MAX_DURATION", _above_margin(values, "CREDITS_MAX_DURATION")


def worker_timeout(values):
    """gunicorn's worker timeout, in seconds: GUNICORN_TIMEOUT (read by gunicorn.conf.py too)."""
    if values.get("CREDITS_MAX_DURATION") is not None:
        # A budget sized for a platform's limit would outlive gunicorn's worker.
        raise ConfigError(
            "CREDITS_MAX_DURATION is for a platform that runs the service itself (Vercel); "
            "under gunicorn set GUNICORN_TIMEOUT instead"
        )
    return _above_margin(values, "GUNICORN_TIMEOUT")


def _above_margin(values, name):
    """A request limit in whole seconds, long enough to leave the margin for the last chunk."""
    limit = _positive(values, name, DEFAULT_WORKER_TIMEOUT, int, "a whole number of seconds")
    if limit <= CHUNK_MARGIN:
        raise ConfigError(f"{name} must be above {CHUNK_MARGIN} seconds")
    return limit


def _catch_up_days(values):
    """CREDITS_CATCH_UP_DAYS: a whole number of days from 0 (no catch-up) to 28."""
    text = values.get("CREDITS_CATCH_UP_DAYS", str(DEFAULT_CATCH_UP_DAYS)).strip()
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_CATCH_UP_DAYS):
        raise ConfigError(
            f"CREDITS_CATCH_UP_DAYS must be a whole number of days from 0 to "
            f"{MAX_CATCH_UP_DAYS}, got {values.get('CREDITS_CATCH_UP_DAYS')!r}"
        )
    return int(text)


def _public_url(value, qstash):
    """CREDITS_PUBLIC_URL without a trailing slash; required with QStash's keys.

    A signed request runs only when QStash signed this URL followed by the request's path
    and query string, so the URL callers use must be known whatever proxy is in front.
    """
    value = (value or "").strip().rstrip("/")
    if not value:
        if qstash:
            raise ConfigError(
                "CREDITS_PUBLIC_URL must be set with the QStash signing keys: the URL QStash "
                "calls, up to the routes (e.g. https://credits.example.com)"
            )
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "CREDITS_PUBLIC_URL must be an http(s) URL without a query string, "
            f"e.g. https://credits.example.com, got {value!r}"
        )
    return value


def _positive(values, name, default, kind, meaning):
    """A setting that is a number above 0, or its default when unset."""
    try:
        value = kind(values.get(name, default))
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be {meaning} above 0, got {values.get(name)!r}")
    return value


def cron_secrets(settings):
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


def _local_secret(path):
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
