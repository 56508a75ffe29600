"""The bearer secrets the job routes accept, and the one a local run generates for itself."""

import os
import secrets
import tempfile
from pathlib import Path

from credits.config.readers import ConfigError
from credits.config.settings import Settings

MIN_SECRET_LENGTH = 16


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
