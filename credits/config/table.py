"""Every setting the service, gunicorn.conf.py and gunicorn read: name, reader, default, meaning."""

from collections.abc import Mapping
from typing import Any

from credits.config.readers import (
    Setting,
    above_margin,
    boolean,
    catch_up_days,
    folder,
    log_format,
    plain_text,
    positive,
    public_url,
    status_list,
    trimmed_text,
    webhook_secret,
    webhook_url,
    whole_number,
)

# Every setting the service, gunicorn.conf.py and gunicorn read, in the README's order; the
# README's settings table is made from it (settings_table) and a test holds the two together.
SETTINGS = (
    Setting(
        "DATABASE_URL",
        read=plain_text,
        default=None,
        required="in production",
        meaning="PostgreSQL connection URL (or `key=value` string)",
        field="database_url",
        default_note="embedded PostgreSQL",
    ),
    Setting(
        "CRON_SECRET",
        read=trimmed_text,
        default=None,
        required="yes, with `DATABASE_URL` (not for the CLI)",
        meaning=(
            "the bearer secret, one value of at least 16 characters without a comma; "
            "surrounding spaces and newlines are ignored"
        ),
        field="cron_secret",
        default_note="generated in `.credits/cron_secret` on the embedded database",
    ),
    Setting(
        "CRON_SECRET_NEXT",
        read=trimmed_text,
        default=None,
        required="no",
        meaning=(
            "the new secret while [rotating](docs/SECRETS.md), accepted "
            "as well; at least 16 characters"
        ),
        field="cron_secret_next",
    ),
    Setting(
        "QSTASH_CURRENT_SIGNING_KEY",
        read=trimmed_text,
        default=None,
        required="no; with the next one",
        meaning=(
            "QStash's current signing key: a request with QStash's valid `Upstash-Signature` "
            "may run the jobs"
        ),
        field="qstash_current_signing_key",
    ),
    Setting(
        "QSTASH_NEXT_SIGNING_KEY",
        read=trimmed_text,
        default=None,
        required="no; with the current one",
        meaning="QStash's next signing key (QStash signs with it after a rotation)",
        field="qstash_next_signing_key",
    ),
    Setting(
        "CREDITS_PUBLIC_URL",
        read=public_url,
        default=None,
        required="with the QStash keys",
        meaning=(
            "the URL QStash calls, up to the routes (`https://credits.example.com`); a signed "
            "request runs only when QStash signed this URL followed by its path and query"
        ),
        field="public_url",
    ),
    Setting(
        "CREDITS_STATUS_MAX_AGE_HOURS",
        read=positive(float, "a number of hours"),
        default="26",
        required="no",
        meaning="the status route answers 503 when a job's last success is older than this",
        field="status_max_age_hours",
    ),
    Setting(
        "CREDITS_METRICS_TOKEN",
        read=trimmed_text,
        default=None,
        required="no",
        meaning=(
            "a bearer token for `GET /metrics` only (the job secrets are accepted there too), "
            "so a scraper never holds a secret that runs the jobs; at least 16 characters"
        ),
        field="metrics_token",
    ),
    Setting(
        "CREDITS_LOG_FORMAT",
        read=log_format,
        default="text",
        required="no",
        meaning="`text`: readable lines; `json`: one JSON object per line",
        field="log_format",
    ),
    Setting(
        "CREDITS_ELIGIBLE_STATUSES",
        read=status_list,
        default="active",
        required="no",
        meaning="comma-separated subscription statuses that are granted, e.g. `active,trialing`",
        field="eligible_statuses",
    ),
    Setting(
        "CREDITS_DB_TIMEOUT",
        read=positive(float, "a number of seconds"),
        default="5",
        required="no",
        meaning="seconds to wait for a database connection before answering 503",
        field="db_timeout",
    ),
    Setting(
        "CREDITS_APPLY_SCHEMA",
        read=boolean,
        default="true",
        required="no",
        meaning=(
            "`false` for a service running as a role that may not create tables ([the "
            "database contract](docs/DATABASE.md)): it then only checks that the schema "
            "is there"
        ),
        field="apply_schema",
    ),
    Setting(
        # Fits the shortest caller's limit (cron-job.org, 30 s).
        "CREDITS_TIME_BUDGET",
        read=positive(float, "a number of seconds"),
        default="8",
        required="no",
        meaning=(
            "seconds a job call works before it stops starting chunks and answers "
            '`"complete": false` ([Time limits](#time-limits))'
        ),
        field="time_budget",
    ),
    Setting(
        "CREDITS_CHUNK_SIZE",
        read=positive(int, "a count"),
        default="25000",
        required="no",
        meaning="keys (subscriptions, users) a chunk transaction covers",
        field="chunk_size",
    ),
    Setting(
        # A run's chunks go this many at a time, each stripe of keys on a connection of its own.
        "CREDITS_PARALLEL_CHUNKS",
        read=positive(int, "a count"),
        default="2",
        required="no",
        meaning="stripes of keys a run works side by side, each on its own database connection",
        field="parallel_chunks",
    ),
    Setting(
        # A platform outage of a week loses no month's credits.
        "CREDITS_CATCH_UP_DAYS",
        read=catch_up_days,
        default="7",
        required="no",
        meaning=(
            "days a grant run looks back across a month's end for due days missed since the "
            "last completed run ([which months a run covers]"
            "(docs/ENDPOINTS.md#get-apijobscreditsgrant)), 0 to 28"
        ),
        field="catch_up_days",
    ),
    Setting(
        "CREDITS_WEBHOOK_URL",
        read=webhook_url,
        default=None,
        required="no; with its secret",
        meaning="where events are posted as [Standard Webhooks](docs/EVENTS.md)",
        field="webhook_url",
        default_note="events stay in the outbox for the host to read",
    ),
    Setting(
        "CREDITS_WEBHOOK_SECRET",
        read=webhook_secret,
        default=None,
        required="with the URL",
        meaning="the webhooks' signing secret, `whsec_` and base64",
        field="webhook_secret",
    ),
    Setting(
        "CREDITS_EVENTS_RETENTION_DAYS",
        read=positive(int, "a whole number of days"),
        default="7",
        required="no",
        meaning="days a delivered event (an undelivered one without a URL) is kept",
        field="events_retention_days",
    ),
    Setting(
        "CREDITS_DATA_DIR",
        read=folder,
        default=".credits",
        required="no",
        meaning="the embedded PostgreSQL's data and the generated local secret",
        field="data_dir",
    ),
    Setting(
        "WEB_CONCURRENCY",
        read=whole_number,
        default="2",
        required="no",
        meaning=(
            "gunicorn workers; each opens up to `CREDITS_PARALLEL_CHUNKS` + 2 database "
            "connections ([deploy/paas](deploy/paas/README.md#database-connections))"
        ),
        default_note="Heroku's Python buildpack sets it from the dyno size",
    ),
    Setting(
        "GUNICORN_THREADS",
        read=whole_number,
        default="4",
        required="no",
        meaning=(
            "threads per worker: requests a worker answers at once (`/healthz` while a job "
            "runs); they share the worker's connections"
        ),
    ),
    Setting(
        "GUNICORN_TIMEOUT",
        read=above_margin,
        default="300",
        required="no",
        meaning=(
            "seconds before gunicorn kills a worker that is still in a request; a call's "
            "budget may be at most this less 30"
        ),
    ),
    Setting(
        "CREDITS_MAX_DURATION",
        read=above_margin,
        default=None,
        required="no; instead of `GUNICORN_TIMEOUT` where the platform runs the app (Vercel)",
        meaning=(
            "the platform's limit on one request in seconds (Vercel: the function's "
            "`maxDuration`); a call's budget may be at most this less 30. Setting both, or "
            "this one under gunicorn, stops the service at startup"
        ),
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        read=None,
        default=None,
        required="no; with several gunicorn workers",
        meaning=(
            "a folder where every worker writes its request counts, so each `/metrics` scrape "
            "adds them all up; emptied when gunicorn starts "
            "([deploy/monitoring](deploy/monitoring/README.md))"
        ),
        default_note="each scrape counts one worker's requests",
    ),
    Setting(
        "PORT",
        read=None,
        default=None,
        required="no",
        meaning=(
            "when set (as on a PaaS), gunicorn listens on `0.0.0.0:$PORT` instead of "
            "`127.0.0.1:8000`"
        ),
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def value_of(name: str, values: Mapping[str, str]) -> Any:
    """The value of the setting so named in environment-style values (gunicorn.conf.py)."""
    return _BY_NAME[name].value(values)


def settings_table() -> str:
    """The README's settings table, made from SETTINGS and the console's settings."""
    # Imported here: the console's settings are declared with this package's Setting.
    from credits.console.settings import SETTINGS as CONSOLE_SETTINGS

    head = ["| name | required | default | meaning |", "| --- | --- | --- | --- |"]
    return "\n".join(head + [s.row() for s in (*SETTINGS, *CONSOLE_SETTINGS)])
