"""The service's Prometheus metrics: its requests, counted in process, and its jobs, read from
credits.job_runs at scrape time (docs/ENDPOINTS.md, "GET /metrics").

The job metrics come from the database, so every gunicorn worker and every function instance
answers the same. The request metrics are each process's own, unless prometheus_client's
multiprocess mode is on (PROMETHEUS_MULTIPROC_DIR, set before the service starts): then every
worker writes them to that folder and a scrape adds them all up.
"""

import logging
from collections.abc import Iterable, Iterator, Sequence
from numbers import Real

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from credits.db import DatabaseUnavailable, Pool, SchemaMissing, connection, queries
from credits.monitor import Row

logger = logging.getLogger("credits")

# Seconds; 5 is the slow-response alert's threshold (deploy/monitoring/alerts.yml), and the
# top buckets hold job calls, which work for their time budget (up to 270 s).
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# The methods a request is counted under; anything else a client sends counts as "other", so a
# client cannot add label values (nor can it with paths: a request counts under its route).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The statuses each route's series start with, at 0, before any request (start_at_zero).
STARTED_STATUSES = ("200", "500", "503")
UNMATCHED = "unmatched"  # the route of a request no route took (a 404, or a 405)

# A scrape waits at most this long for a connection (or CREDITS_DB_TIMEOUT when shorter), and
# its statement this long, well inside Prometheus' default scrape timeout of 10 s.
SCRAPE_CONNECTION_WAIT = 2.0
SCRAPE_STATEMENT_MS = 2000


def multiprocess_mode() -> bool:
    """True when prometheus_client writes the request metrics to PROMETHEUS_MULTIPROC_DIR."""
    return values.ValueClass is not values.MutexValue


class RequestMetrics:
    """Requests by route (the URL rule, never the raw path), method and status, and how long
    each took."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ("route", "method", "status")
        self.requests = Counter(
            "credits_http_requests", "Requests answered.", labels, registry=registry
        )
        self.duration = Histogram(
            "credits_http_request_duration_seconds",
            "Time to answer a request.",
            labels,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    def start_at_zero(self, routes: Iterable[tuple[str, str]]) -> None:
        """Make each (route, method)'s series of STARTED_STATUSES now, at 0.

        rate() needs two samples of a series: one born at 1, at a route's first 500 in a
        process, would never show in the error-rate alert, nor a first slow answer in the
        slow-response alert.
        """
        for route, method in routes:
            for status in STARTED_STATUSES:
                self.requests.labels(route, method, status)
                self.duration.labels(route, method, status)

    def observe(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        labels = (route or UNMATCHED, method if method in METHODS else "other", str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


class JobMetrics(Collector):
    """Each job's last run and last success, read from job_runs at each scrape.

    A database that does not answer in time gives credits_database_up 0 and no job metrics,
    never a failed scrape: the request metrics still tell what the service answered meanwhile.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        """The job metrics, and whether the database answered for them."""
        up = GaugeMetricFamily(
            "credits_database_up", "1 when the database answered this scrape's job query."
        )
        try:
            rows = self._read()
        except (DatabaseUnavailable, SchemaMissing, psycopg.Error) as exc:
            logger.warning("/metrics: no job metrics, the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from job_families(rows)

    def _read(self) -> Sequence[Row]:
        """read_job_metrics, on a connection had and a statement answered within bounds."""
        wait = min(self.pool.timeout, SCRAPE_CONNECTION_WAIT)
        with connection(self.pool, timeout=wait) as conn, conn.transaction():
            conn.execute(queries["set_probe_timeout"], {"milliseconds": str(SCRAPE_STATEMENT_MS)})
            return conn.execute(queries["read_job_metrics"]).fetchall()


def job_families(rows: Sequence[Row]) -> Iterator[Metric]:
    """The job metric families from read_job_metrics' rows; a job that never ran has none but
    its absence, which the no-success alert reads as such."""
    started = GaugeMetricFamily(
        "credits_job_last_run_timestamp_seconds",
        "When the job's last run started.",
        labels=["credits_job"],
    )
    duration = GaugeMetricFamily(
        "credits_job_last_run_duration_seconds",
        "How long the job's last run took (none while it runs).",
        labels=["credits_job"],
    )
    status = GaugeMetricFamily(
        "credits_job_last_run_status",
        "1 for the status of the job's last run (running, succeeded, partial, failed, abandoned).",
        labels=["credits_job", "status"],
    )
    results = GaugeMetricFamily(
        "credits_job_last_run_result",
        "A count of the job's last run, as the job route answers it: grant's processed, "
        "successful, skipped, failed; expire's processedBatches, processedUsers, "
        "totalExpiredAmount; deliver's delivered, failed, givenUp, deleted, pending.",
        labels=["credits_job", "result"],
    )
    succeeded = GaugeMetricFamily(
        "credits_job_last_success_timestamp_seconds",
        "When the job's last successful run finished.",
        labels=["credits_job"],
    )
    for row in rows:
        job = str(row["job"])
        if row["status"] is not None:
            started.add_metric([job], row["started_seconds"])
            status.add_metric([job, str(row["status"])], 1)
        if row["duration_seconds"] is not None:
            duration.add_metric([job], row["duration_seconds"])
        counts = row["results"]
        if isinstance(counts, dict):
            for name, value in counts.items():
                if isinstance(value, Real) and not isinstance(value, bool):
                    results.add_metric([job, name], float(value))
        if row["succeeded_seconds"] is not None:
            succeeded.add_metric([job], row["succeeded_seconds"])
    yield from (started, duration, status, results, succeeded)


def scrape_registry(pool: Pool) -> tuple[CollectorRegistry, RequestMetrics]:
    """The app's own registry (tests make many apps), holding both kinds of metrics, and the
    request metrics to count requests in.

    In multiprocess mode the request metrics are registered nowhere: each process writes them
    to the folder, and the registry reads them from there for every worker at once.
    """
    registry = CollectorRegistry()
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        request_metrics = RequestMetrics(None)
    else:
        request_metrics = RequestMetrics(registry)
    registry.register(JobMetrics(pool))
    return registry, request_metrics
