"""Fixtures for running the deploy/ files against the service, or against a stand-in."""

import pytest

from testing.seeders import DUE_ON_THE_FIRST
from testing.served import in_a_thread

from .support import Scripted


@pytest.fixture
def due_subscription(add_plan, subscribe):
    """One subscription whose grant is due today, so a grant run has something to do."""
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", DUE_ON_THE_FIRST)


@pytest.fixture
def service(app):
    """The service answering HTTP on a free local port, as a platform would reach it."""
    with in_a_thread(app) as url:
        yield url


@pytest.fixture
def scripted():
    """Start stand-in services answering as scripted; they close after the test."""
    servers = []

    def start(*answers):
        servers.append(Scripted(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def granted(sql_run):
    """The batches granted so far, as (user, amount) rows."""
    return lambda: sql_run("SELECT user_id, amount FROM credits.batches")


@pytest.fixture
def job_runs(sql_run):
    """The jobs run so far, oldest first."""
    return lambda: [
        row["job"] for row in sql_run("SELECT job FROM credits.job_runs ORDER BY started_at")
    ]
