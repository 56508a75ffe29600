"""Credits: monthly grants, expiry and spending of credit batches, on PostgreSQL."""

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

# Fields the jobs attach to their log records (logger.info(..., extra=...)); JSON lines carry
# them as they are, plain lines already say them in words.
LOG_FIELDS = ("event", "job", "job_id", "dry_run", "duration_ms", "results", "complete", "error")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the job's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in LOG_FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a line is written (a test's capture, a redirect):
    stdout is for a command's one JSON result, never for log lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure_logging(log_format: str = "text") -> None:
    """Send the service's log lines to stderr, as plain text or as JSON lines."""
    logger = logging.getLogger("credits")
    if not logger.handlers:
        logger.addHandler(StderrHandler())
        logger.setLevel(logging.INFO)
    formatter = JsonLineFormatter() if log_format == "json" else logging.Formatter("%(message)s")
    for handler in logger.handlers:
        handler.setFormatter(formatter)
