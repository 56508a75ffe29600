"""/metrics under gunicorn with several workers: with PROMETHEUS_MULTIPROC_DIR, a scrape counts
the requests every worker answered."""

import urllib.request

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from testing import SECRET
from testing.served import Served

HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}


def healthz_counts(families):
    """The credits_http_requests_total of GET /healthz 200 in these metric families."""
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "credits_http_requests_total" and sample.labels == HEALTHZ
    )


def get(port, path, token=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def test_a_scrape_counts_the_requests_of_every_worker(database_url, tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"an earlier run's counts")
    env = {"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": "2"}
    with Served({**env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}) as service:
        assert not (folder / "counter_1.db").exists()  # emptied when gunicorn started
        answered = 0
        by_worker = {}
        # Until both workers have answered some (the kernel hands connections to either).
        while answered < 200 and len([n for n in by_worker.values() if n]) < 2:
            for _ in range(10):
                get(service.port, "/healthz")
            answered += 10
            by_worker = {
                path.name: healthz_counts(MultiProcessCollector.merge([str(path)]))
                for path in folder.glob("counter_*.db")
                if path.stat().st_size  # a worker's file is empty for a moment as it is made
            }
        assert len([n for n in by_worker.values() if n]) == 2, by_worker
        text = get(service.port, "/metrics", SECRET)
    assert healthz_counts(text_string_to_metric_families(text)) == answered
