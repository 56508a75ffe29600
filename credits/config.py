"""Settings of the credits service, read from the environment (and .env)."""

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET_LENGTH = 16
# CRON_SECRET holds the current secret, or "current,next" while the callers move to a new one.
MAX_SECRETS = 2


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
    apply_schema: bool = True

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
        apply_schema = values.get("CREDITS_APPLY_SCHEMA", "true").strip().lower()
        if apply_schema not in ("true", "false"):
            raise ConfigError("CREDITS_APPLY_SCHEMA must be true or false")
        return cls(
            database_url=values.get("DATABASE_URL") or None,
            # Stray spaces and newlines come from copy-paste and .env files, never from intent.
            cron_secret=(values.get("CRON_SECRET") or "").strip() or None,
            eligible_statuses=statuses,
            data_dir=Path(values.get("CREDITS_DATA_DIR", ".credits")),
            db_timeout=db_timeout,
            apply_schema=apply_schema == "true",
        )

    @property
    def embedded(self):
        """True when no DATABASE_URL is set and the service runs its own PostgreSQL."""
        return self.database_url is None

    @property
    def local_secret_file(self):
        """Where a local run keeps the secret it generated for itself."""
        return self.data_dir / "cron_secret"


def cron_secrets(settings):
    """The bearer secrets the job routes accept (one, or two while rotating); fails closed.

    A run on the embedded database (a local try-out) that has no CRON_SECRET generates one
    and keeps it in the data folder; anywhere else a missing secret is a startup error.
    Errors name the setting, never the secret.
    """
    value = settings.cron_secret
    if value is None and settings.embedded:
        value = _local_secret(settings.local_secret_file)
    if value is None:
        raise ConfigError(
            "CRON_SECRET is not set: the job routes never run without one. "
            "Generate one with: python -c 'import secrets; print(secrets.token_hex(16))'"
        )
    accepted = tuple(part.strip() for part in value.split(","))
    if not all(accepted):
        raise ConfigError("CRON_SECRET has an empty part; give one secret, or two comma-separated")
    if len(accepted) > MAX_SECRETS:
        raise ConfigError(
            f"CRON_SECRET holds {len(accepted)} secrets; give one, or two (current,next) "
            "while rotating"
        )
    if any(len(secret) < MIN_SECRET_LENGTH for secret in accepted):
        raise ConfigError(f"CRON_SECRET must be at least {MIN_SECRET_LENGTH} characters long")
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
