"""Credits: monthly grants, expiry and spending of credit batches, on PostgreSQL."""

import logging
import sys


def configure_logging():
    """Send the service's log lines to stdout as plain text, once."""
    logger = logging.getLogger("credits")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
