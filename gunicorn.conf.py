"""gunicorn settings, read by `gunicorn wsgi:app` from this folder (locally and in the Procfile).

Binds 127.0.0.1:8000, or 0.0.0.0:$PORT where the platform sets PORT (gunicorn's own default).
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# A grant or expire over every user runs in one request; give it time before the worker is killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
accesslog = "-"
# gunicorn's default line, less the query string (%(r)s, %(q)s) and the Basic-auth user name
# (%(u)s): a caller who puts the secret there must not have it written to the log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
