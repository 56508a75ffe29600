"""gunicorn's logger, whose error log never says a request's query string or header values.

gunicorn quotes them when it refuses a malformed request, and in the details of errors; the
secret may be in any of them (gunicorn.conf.py's logger_class; its access log line leaves
them out by its format).
"""

import logging
from typing import Any

from gunicorn import glogging


class RedactingFilter(logging.Filter):
    """Keeps the request line, query string and header values out of gunicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without what it quotes; never drops one."""
        message = record.getMessage()
        if message.startswith("Invalid request from ip="):
            # "Invalid request from ip=1.2.3.4: Invalid HTTP request line: 'GET /?token=...'"
            origin, _, error = message.partition(": ")
            record.msg, record.args = "%s: %s (not logged)", (origin, _kind(error))
        elif message.startswith("Error handling request") and isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(
                type(arg).__name__ if isinstance(arg, BaseException) else arg for arg in record.args
            )
        if record.exc_info and record.exc_info[1] is not None:
            # A parser error's text quotes what it could not parse, and a client's time-out
            # needs no traceback: the type says enough.
            exc = record.exc_info[1]
            if isinstance(exc, TimeoutError) or type(exc).__module__.startswith("gunicorn.http"):
                record.exc_info = None
                record.msg = f"{record.msg} ({type(exc).__name__})"
        return True


def _kind(error: str) -> str:
    """What gunicorn found wrong, without what it quotes: the text before a colon or quote."""
    return error.split(":", 1)[0].split("'", 1)[0].split('"', 1)[0].strip()


def _without_query(value: Any) -> Any:
    """A request URI (or any other value) cut at its query string."""
    return value.split("?", 1)[0] if isinstance(value, str) else value


REDACT = RedactingFilter()


class Logger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, whose error log goes through RedactingFilter."""

    def setup(self, cfg: Any) -> None:
        """Set the logs up as gunicorn does, then filter the error log (once, on reloads too)."""
        super().setup(cfg)
        self.error_log.addFilter(REDACT)
