"""gunicorn settings, read by `gunicorn wsgi:app` from this folder (locally and in the Procfile).

Binds 127.0.0.1:8000, or 0.0.0.0:$PORT where the platform sets PORT (gunicorn's own default).
"""

import os

from credits.config import worker_timeout

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Above the longest time budget a request may ask for (credits.config): a run stops starting
# chunks when its budget is spent, well before its worker would be killed.
timeout = worker_timeout(os.environ)
accesslog = "-"
# gunicorn's default line, less the query string (%(r)s, %(q)s) and the Basic-auth user name
# (%(u)s): a caller who puts the secret there must not have it written to the log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
