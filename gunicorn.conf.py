"""gunicorn settings, read by `gunicorn wsgi:app` from this folder (locally and in the Procfile).

Binds 127.0.0.1:8000, or 0.0.0.0:$PORT where the platform sets PORT (gunicorn's own default).
Settings only: the worker, the logger and the hooks they name live in credits/web/.
"""

import os

from credits.config import value_of, worker_timeout
from credits.web import gunicorn_logs, hooks, worker

workers = value_of("WEB_CONCURRENCY", os.environ)
# Above the longest time budget a request may ask for (credits.config): a run stops starting
# chunks when its budget is spent, well before its worker would be killed.
timeout = worker_timeout(os.environ)
# Threads, so /healthz and a refused call are answered while a job runs for its whole budget.
threads = value_of("GUNICORN_THREADS", os.environ)
# Seconds a connection may stay open without sending a request (kept alive, or idle from the
# start) before it is closed; it waits in the worker's poller meanwhile, holding no thread.
keepalive = 5
accesslog = "-"
# gunicorn's default line, less the query string (%(r)s, %(q)s) and the Basic-auth user name
# (%(u)s): a caller who puts the secret there must not have it written to the log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
# Slow clients wait in the poller and have CLIENT_IO_TIMEOUT a read, REQUEST_DEADLINE a request.
worker_class = worker.Worker
# The error log never says a query string or a header value.
logger_class = gunicorn_logs.Logger
on_starting = hooks.on_starting
child_exit = hooks.child_exit
on_exit = hooks.on_exit
