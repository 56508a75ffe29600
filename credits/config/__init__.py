"""Settings of the credits service, read from the environment (and .env).

readers.py turns a setting's text into its value; table.py lists every setting (the README's
table); settings.py checks them together into Settings; cron_secret.py reads the secrets (and
the metrics token).
"""

from credits.config.cron_secret import MIN_SECRET_LENGTH, cron_secrets, metrics_tokens
from credits.config.readers import (
    CHUNK_MARGIN,
    LOG_FORMATS,
    MAX_CATCH_UP_DAYS,
    ConfigError,
    Setting,
)
from credits.config.settings import Settings, request_limit, worker_timeout
from credits.config.table import SETTINGS, settings_table, value_of

__all__ = [
    "CHUNK_MARGIN",
    "LOG_FORMATS",
    "MAX_CATCH_UP_DAYS",
    "MIN_SECRET_LENGTH",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "cron_secrets",
    "metrics_tokens",
    "request_limit",
    "settings_table",
    "value_of",
    "worker_timeout",
]
