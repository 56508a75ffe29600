"""The Next.js receiver example (examples/node/webhooks) under Node: the service's signed events
are verified by the `standardwebhooks` npm package, stored once each, and a wrong secret is
refused and seen as such by the service."""

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from credits import config, events
from testing.node import install_locked, requires_node

from .test_webhooks import OTHER_SECRET, WEBHOOK_SECRET, grant

RECEIVER = Path(__file__).resolve().parent.parent / "examples" / "node" / "webhooks"

pytestmark = requires_node("the Node receiver")


@pytest.fixture(scope="session")
def receiver_modules():
    """The receiver's dependencies, installed once per session as its lockfile pins them."""
    install_locked(RECEIVER)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node_receiver(receiver_modules, tmp_path):
    """serve.js on a free port with the webhook secret; answers (url, store file)."""
    port, store = free_port(), tmp_path / "events.jsonl"
    env = {
        "PATH": shutil.which("node").rsplit("/", 1)[0],
        "PORT": str(port),
        "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CREDITS_EVENTS_FILE": str(store),
    }
    process = subprocess.Popen(
        ["node", "serve.js"], cwd=RECEIVER, env=env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().startswith("listening")
    yield f"http://127.0.0.1:{port}/api/credits/events", store, process
    process.terminate()
    process.wait(timeout=10)


def settings_for(test_config, url, secret):
    values = {**test_config, "CREDITS_WEBHOOK_URL": url, "CREDITS_WEBHOOK_SECRET": secret}
    return config.Settings.from_mapping(values)


def test_the_node_receiver_verifies_and_stores_each_event_once(
    node_receiver, test_config, pool, sql_run
):
    url, store, _ = node_receiver
    grant(sql_run, "alice", 10, "a")
    sql_run("SELECT credits.spend('alice', 4, 'job-1')")
    assert events.deliver(pool, settings_for(test_config, url, WEBHOOK_SECRET), None).delivered == 2
    # A retry of a delivered event (the service died before recording it) is stored once.
    sql_run("UPDATE credits.events SET delivered_at = NULL WHERE type = 'credits.spent'")
    assert events.deliver(pool, settings_for(test_config, url, WEBHOOK_SECRET), None).delivered == 1
    stored = [json.loads(line) for line in store.read_text().splitlines()]
    assert [(e["type"], e["data"]["amount"]) for e in stored] == [
        ("credits.granted", 10),
        ("credits.spent", 4),
    ]
    assert stored[0]["webhookId"].startswith("evt_")


def test_the_node_receiver_refuses_a_wrong_secret_and_the_service_says_so(
    node_receiver, test_config, pool, sql_run
):
    url, store, _ = node_receiver
    grant(sql_run, "alice", 10, "a")
    done = events.deliver(pool, settings_for(test_config, url, OTHER_SECRET), None)
    assert done.delivered == 0 and done.last_error.endswith(f"HTTP 401 from {url}")
    assert not store.exists()
