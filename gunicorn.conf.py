"""gunicorn settings, read by `gunicorn wsgi:app` from this folder (locally and in the Procfile).

Binds 127.0.0.1:8000, or 0.0.0.0:$PORT where the platform sets PORT (gunicorn's own default).
"""

import os

from dotenv import load_dotenv

from credits import embedded
from credits.config import ConfigError, Settings, worker_timeout

embedded_server = None  # the master's handle on the embedded PostgreSQL, when it runs one

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Above the longest time budget a request may ask for (credits.config): a run stops starting
# chunks when its budget is spent, well before its worker would be killed.
timeout = worker_timeout(os.environ)
accesslog = "-"
# gunicorn's default line, less the query string (%(r)s, %(q)s) and the Basic-auth user name
# (%(u)s): a caller who puts the secret there must not have it written to the log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


def on_starting(server):
    """Start the embedded PostgreSQL (no DATABASE_URL) in the master, which outlives workers."""
    global embedded_server
    load_dotenv()  # as wsgi.py does in the workers: DATABASE_URL may come from .env
    try:
        settings = Settings.from_mapping(os.environ)
        if settings.embedded:
            embedded_server = embedded.own(settings)
    except ConfigError:
        return  # each worker says what is wrong, and the boot stops


def on_exit(server):
    """Stop the embedded PostgreSQL with the service, whatever happened to its workers."""
    if embedded_server is not None:
        embedded.release(embedded_server)
