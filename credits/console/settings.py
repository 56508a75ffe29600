"""The console's setting, CREDITS_CONSOLE_KEY, declared and read apart from the job service's
(credits/config.py): the console is off unless it is set, and a short key stops the start."""

from collections.abc import Mapping

from credits.config import ConfigError, Setting

# The key signs the operators' session cookies and their forms' CSRF tokens.
MIN_KEY_LENGTH = 32


def _console_key(name: str, text: str) -> str | None:
    """The key without surrounding spaces and newlines, None when empty; refused when short."""
    key = text.strip()
    if key and len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_KEY_LENGTH} characters long")
    return key or None


CONSOLE_KEY = Setting(
    "CREDITS_CONSOLE_KEY",
    read=_console_key,
    default=None,
    required="no; turns the [console](docs/CONSOLE.md) on",
    meaning=(
        "the key that signs the console's sessions, at least 32 characters; unset, every "
        "`/admin` path answers 404"
    ),
)
SETTINGS = (CONSOLE_KEY,)


def console_key(values: Mapping[str, str]) -> str | None:
    """The console's key in environment-style values; None: the console is off."""
    key: str | None = CONSOLE_KEY.value(values)
    return key
