"""Settings of the credits service, read from the environment (and .env)."""

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET_LENGTH = 16
LOG_FORMATS = ("text", "json")


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
    log_format: str = "text"
    status_max_age_hours: float = 26.0
    qstash_current_signing_key: str | None = None
    qstash_next_signing_key: str | None = None

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
        try:
            db_timeout = float(values.get("CREDITS_DB_TIMEOUT", "5"))
        except ValueError:
            raise ConfigError("CREDITS_DB_TIMEOUT must be a number of seconds") from None
        if db_timeout <= 0:
            raise ConfigError("CREDITS_DB_TIMEOUT must be a number of seconds above 0")
        log_format = values.get("CREDITS_LOG_FORMAT", "text").strip().lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"CREDITS_LOG_FORMAT must be text or json, got {log_format!r}")
        try:
            max_age = float(values.get("CREDITS_STATUS_MAX_AGE_HOURS", "26"))
        except ValueError:
            raise ConfigError("CREDITS_STATUS_MAX_AGE_HOURS must be a number of hours") from None
        if max_age <= 0:
            raise ConfigError("CREDITS_STATUS_MAX_AGE_HOURS must be a number of hours above 0")
        current_key = (values.get("QSTASH_CURRENT_SIGNING_KEY") or "").strip() or None
        next_key = (values.get("QSTASH_NEXT_SIGNING_KEY") or "").strip() or None
        if (current_key is None) != (next_key is None):
            # QStash signs with either key while it rotates them; one alone would fail later.
            raise ConfigError(
                "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY must be set together"
            )
        return cls(
            database_url=values.get("DATABASE_URL") or None,
            # Stray spaces and newlines come from copy-paste and .env files, never from intent.
            cron_secret=(values.get("CRON_SECRET") or "").strip() or None,
            eligible_statuses=statuses,
            data_dir=Path(values.get("CREDITS_DATA_DIR", ".credits")),
            db_timeout=db_timeout,
            log_format=log_format,
            status_max_age_hours=max_age,
            qstash_current_signing_key=current_key,
            qstash_next_signing_key=next_key,
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


def cron_secret(settings):
    """The bearer secret the job routes accept; fails closed when there is none.

    A run on the embedded database (a local try-out) that has no CRON_SECRET generates one
    and keeps it in the data folder; anywhere else a missing secret is a startup error.
    """
    secret = settings.cron_secret
    if secret is None and settings.embedded:
        secret = _local_secret(settings.local_secret_file)
    if secret is None:
        raise ConfigError(
            "CRON_SECRET is not set: the job routes never run without one. "
            "Generate one with: python -c 'import secrets; print(secrets.token_hex(16))'"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"CRON_SECRET must be at least {MIN_SECRET_LENGTH} characters long")
    return secret


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
