"""What the service and its CLI run with, read once from the environment and checked whole."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from credits.config.readers import CHUNK_MARGIN, ConfigError
from credits.config.table import SETTINGS, value_of


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
    webhook_url: str | None
    webhook_secret: str | None
    events_retention_days: int
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
        if (fields["webhook_url"] is None) != (fields["webhook_secret"] is None):
            # Unsigned events would be refused by the receiver; a secret alone posts nothing.
            raise ConfigError("CREDITS_WEBHOOK_URL and CREDITS_WEBHOOK_SECRET must be set together")
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
