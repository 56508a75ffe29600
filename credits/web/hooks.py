"""gunicorn's server hooks (gunicorn.conf.py's on_starting, child_exit and on_exit): the embedded
PostgreSQL in the master, which outlives its workers, the local secret said once, and the
metrics folder of several workers (PROMETHEUS_MULTIPROC_DIR)."""

import logging
import os
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

import credits
from credits import embedded
from credits.config import ConfigError, Settings, cron_secrets

# The master's handle on the embedded PostgreSQL, when it runs one.
embedded_server: Any = None


def on_starting(server: Any) -> None:
    """Check the settings and start the embedded PostgreSQL (no DATABASE_URL) in the master,
    which outlives workers."""
    global embedded_server
    load_dotenv()  # as wsgi.py does in the workers: DATABASE_URL may come from .env
    _empty_metrics_folder()
    try:
        settings = Settings.from_mapping(os.environ)
        # A missing or bad secret stops here, before any worker (a local run's is made here).
        cron_secrets(settings)
        if settings.embedded:
            embedded_server = embedded.own(settings)
    except ConfigError as exc:
        # One line from the master (gunicorn prints "Error: ..." and exits 1), not a traceback
        # from each worker it would start.
        raise RuntimeError(str(exc)) from None
    if settings.embedded and settings.cron_secret is None:
        _show_local_secret(settings, server.cfg.bind[0])


def _empty_metrics_folder() -> None:
    """Start PROMETHEUS_MULTIPROC_DIR empty (made if missing): the counts of an earlier run's
    workers must not be added to this one's (docs/ENDPOINTS.md, "GET /metrics")."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for leftover in Path(folder).glob("*.db"):
            leftover.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client a worker is gone, in multiprocess mode (its counts are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _show_local_secret(settings: Settings, bind: str) -> None:
    """Say where the local secret is and how to call with it, at the address gunicorn binds:
    here, once, not in each worker."""
    credits.configure_logging(settings.log_format)
    host, _, port = bind.rpartition(":")
    # A server bound to every address answers on the loopback one.
    host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host
    logging.getLogger("credits").info(
        "No CRON_SECRET set: using the local secret in %s. Try:\n"
        '  curl -H "Authorization: Bearer $(cat %s)" '
        "http://%s:%s/api/jobs/credits/grant",
        settings.local_secret_file,
        settings.local_secret_file,
        host,
        port,
    )


def on_exit(server: Any) -> None:
    """Stop the embedded PostgreSQL with the service, whatever happened to its workers."""
    if embedded_server is not None:
        embedded.release(embedded_server)
