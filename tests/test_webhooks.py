"""Events delivered as Standard Webhooks to a local receiver that fails on purpose."""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from credits import config, events
from credits.cli import cli
from testing import SECRET

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"credits-webhook-test-secret!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-entirely-1234").decode()


class Receiver:
    """A webhook receiver on localhost: verifies each request with the library, answers what
    it is told to (a status, or "hang"), and keeps what it took."""

    def __init__(self, secret=WEBHOOK_SECRET):
        self.webhook = Webhook(secret)
        self.answers = []  # what to answer next, one per request; then 204
        self.requests = []  # (webhook-id, event) of every request, verified or not
        self.taken = []  # (webhook-id, event) of the requests answered 2xx
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.answer(self, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler, body):
        """Verify, then answer as told."""
        with self.lock:
            answer = self.answers.pop(0) if self.answers else 204
            try:
                event = self.webhook.verify(body, dict(handler.headers))
            except WebhookVerificationError:
                event, answer = None, 401
            self.requests.append((handler.headers["webhook-id"], event))
            if answer != "hang" and 200 <= answer < 300:
                self.taken.append((handler.headers["webhook-id"], event))
        if answer == "hang":
            time.sleep(2)
            return
        handler.send_response(answer)
        handler.send_header("content-length", "0")
        handler.end_headers()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hooked(test_config, receiver):
    """The settings with the receiver as the webhook URL."""
    values = {**test_config, "CREDITS_WEBHOOK_URL": receiver.url}
    return {**values, "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def deliver(hooked, pool):
    settings = config.Settings.from_mapping(hooked)
    return lambda budget=None: events.deliver(pool, settings, budget)


def grant(sql_run, user, amount, reference):
    sql_run("SELECT credits.grant_credits(%s, %s, 'bonus', %s)", (user, amount, reference))


def pending(sql_run):
    return sql_run(
        "SELECT id, attempts, last_error, given_up_at FROM credits.events "
        "WHERE delivered_at IS NULL ORDER BY id"
    )


def due_now(sql_run):
    """Let the back-off pass."""
    sql_run("UPDATE credits.events SET next_attempt_at = now() WHERE delivered_at IS NULL")


def test_events_go_out_signed_in_order_with_their_id(sql_run, receiver, deliver):
    grant(sql_run, "alice", 10, "a")
    grant(sql_run, "bob", 20, "b")
    grant(sql_run, "alice", 30, "c")
    ids = [row["id"] for row in sql_run("SELECT id FROM credits.events ORDER BY id")]
    done = deliver()
    assert (done.delivered, done.failed, done.complete, done.pending) == (3, 0, True, 0)
    assert [webhook_id for webhook_id, _ in receiver.taken] == [f"evt_{i}" for i in ids]
    first = receiver.taken[0][1]
    assert first["type"] == "credits.granted" and first["data"]["amount"] == 10
    assert "timestamp" in first
    assert deliver().delivered == 0  # delivered once


def test_a_failing_receiver_gets_the_event_again_with_the_same_id_and_order_is_kept(
    sql_run, receiver, deliver
):
    grant(sql_run, "alice", 10, "a")
    grant(sql_run, "alice", 20, "b")
    grant(sql_run, "bob", 5, "c")
    receiver.answers = [500]
    done = deliver()
    # alice's first failed: her second waits behind it; bob's goes.
    assert (done.delivered, done.failed) == (1, 1)
    assert done.last_error == f"event 1: HTTP 500 from {receiver.url}"
    assert [e["data"]["user_id"] for _, e in receiver.taken] == ["bob"]
    assert deliver().delivered == 0  # backing off
    first = pending(sql_run)[0]
    assert first["attempts"] == 1 and first["last_error"] == "HTTP 500"
    due_now(sql_run)
    assert deliver().delivered == 2  # alice's first, then her second
    alice = [
        (i, e["data"]["amount"]) for i, e in receiver.requests if e["data"]["user_id"] == "alice"
    ]
    assert alice == [(alice[0][0], 10), (alice[0][0], 10), (alice[2][0], 20)]


def test_a_users_backlog_behind_a_failed_event_holds_back_no_other_user(sql_run, receiver, deliver):
    # More of alice's events than one claim takes, then bob's: her first fails, and the rest
    # of hers wait for its retry while bob's goes out in the same call.
    for n in range(events.CLAIM + 20):
        grant(sql_run, "alice", n + 1, f"a{n}")
    grant(sql_run, "bob", 5, "b")
    receiver.answers = [500]
    done = deliver()
    assert (done.delivered, done.failed, done.complete) == (1, 1, True)
    assert [e["data"]["user_id"] for _, e in receiver.taken] == ["bob"]
    due_now(sql_run)
    assert deliver().delivered == events.CLAIM + 20
    alice = [e["data"]["amount"] for _, e in receiver.taken if e["data"]["user_id"] == "alice"]
    assert alice == list(range(1, events.CLAIM + 21))


def test_an_event_another_delivery_holds_keeps_its_users_later_events_back(
    sql_run, receiver, deliver, database_url
):
    grant(sql_run, "alice", 10, "a")
    grant(sql_run, "alice", 20, "b")
    grant(sql_run, "bob", 5, "c")
    first = sql_run("SELECT min(id) AS id FROM credits.events")[0]["id"]
    with psycopg.connect(database_url) as other:  # a delivery posting alice's first event
        other.execute("SELECT FROM credits.events WHERE id = %s FOR UPDATE", (first,))
        done = deliver()
        assert done.delivered == 1
        assert [e["data"]["user_id"] for _, e in receiver.taken] == ["bob"]
    assert deliver().delivered == 2
    assert [e["data"]["amount"] for _, e in receiver.taken] == [5, 10, 20]


def test_an_event_sent_again_goes_out_before_its_users_later_retry(sql_run, receiver, deliver):
    grant(sql_run, "alice", 10, "a")
    grant(sql_run, "alice", 20, "b")
    sql_run("UPDATE credits.events SET given_up_at = now() WHERE id = 1")  # alice's first
    receiver.answers = [500]
    assert deliver().failed == 1  # her second, now her oldest, fails: a retry
    sql_run("UPDATE credits.events SET given_up_at = NULL WHERE id = 1")  # `events resend 1`
    due_now(sql_run)
    assert deliver().delivered == 2
    assert [e["data"]["amount"] for _, e in receiver.taken] == [10, 20]


def test_a_hanging_receiver_is_timed_out_and_tried_again(sql_run, receiver, deliver, monkeypatch):
    monkeypatch.setattr(events, "TIMEOUT", 0.5)
    grant(sql_run, "alice", 10, "a")
    receiver.answers = ["hang"]
    done = deliver()
    assert (done.delivered, done.failed) == (0, 1)
    assert "no answer" in pending(sql_run)[0]["last_error"]
    due_now(sql_run)
    assert deliver().delivered == 1


def test_a_receiver_down_loses_nothing_and_gets_all_in_order_once_back(
    sql_run, test_config, pool, receiver
):
    down = {**test_config, "CREDITS_WEBHOOK_URL": "http://127.0.0.1:9/down"}
    settings = config.Settings.from_mapping({**down, "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET})
    for n in range(6):
        grant(sql_run, f"user{n % 3}", n + 1, f"r{n}")
    for _ in range(5):
        done = events.deliver(pool, settings, None)
        # Three failures in a row: the receiver is down, the call stops trying.
        assert done.delivered == 0 and done.failed == 3 and "unreachable" in done.last_error
        due_now(sql_run)
    back = config.Settings.from_mapping(
        {
            **test_config,
            "CREDITS_WEBHOOK_URL": receiver.url,
            "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    while events.deliver(pool, back, None).delivered:
        pass
    ids = [row["id"] for row in sql_run("SELECT id FROM credits.events ORDER BY id")]
    assert sorted(i for i, _ in receiver.taken) == sorted(f"evt_{i}" for i in ids)
    for user in ("user0", "user1", "user2"):
        amounts = [e["data"]["amount"] for _, e in receiver.taken if e["data"]["user_id"] == user]
        assert amounts == sorted(amounts)


def test_a_wrong_secret_shows_in_the_route_and_the_cli(
    sql_run, make_app, hooked, receiver, run_cli, auth
):
    grant(sql_run, "alice", 10, "a")
    client = make_app(**{**hooked, "CREDITS_WEBHOOK_SECRET": OTHER_SECRET}).test_client()
    body = client.get("/api/jobs/credits/deliver", headers=auth).get_json()
    assert body["results"]["failed"] == 1 and body["results"]["pending"] == 1
    assert body["lastError"].endswith(f"HTTP 401 from {receiver.url}")
    listed = run_cli("events", "list", "--state", "pending")
    assert listed.exit_code == 0, listed.output
    (event,) = json.loads(listed.stdout)
    assert event["last_error"] == "HTTP 401" and event["attempts"] == 1


def test_an_event_given_up_is_visible_and_sent_again_from_the_cli(
    sql_run, receiver, deliver, run_cli, monkeypatch
):
    monkeypatch.setattr(events, "MAX_ATTEMPTS", 2)
    grant(sql_run, "alice", 10, "a")
    grant(sql_run, "alice", 20, "b")
    receiver.answers = [500, 500]
    deliver()
    due_now(sql_run)
    done = deliver()
    # Given up after two attempts: alice's next event is no longer held back by it.
    assert (done.given_up, done.delivered) == (1, 1)
    given_up = json.loads(run_cli("events", "list", "--state", "given-up").stdout)
    assert [e["payload"]["amount"] for e in given_up] == [10]
    resent = run_cli("events", "resend", str(given_up[0]["id"]))
    assert resent.exit_code == 0 and json.loads(resent.stdout) == {"resent": [given_up[0]["id"]]}
    assert deliver().delivered == 1
    assert [e["data"]["amount"] for _, e in receiver.taken] == [20, 10]


def test_resend_refuses_an_id_that_is_not_a_number(run_cli):
    result = run_cli("events", "resend", "x")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_two_deliveries_at_once_post_each_event_once(sql_run, receiver, hooked, pool):
    settings = config.Settings.from_mapping(hooked)
    for n in range(40):
        grant(sql_run, f"user{n}", 1, f"r{n}")
    counts = []

    def run():
        counts.append(events.deliver(pool, settings, None).delivered)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for i, _ in receiver.requests]
    assert len(ids) == 40 and len(set(ids)) == 40 and sum(counts) == 40


def test_delivered_events_are_deleted_after_the_retention_and_pending_ones_kept(
    sql_run, receiver, deliver, pool, test_config
):
    grant(sql_run, "alice", 10, "a")
    deliver()
    grant(sql_run, "alice", 20, "b")
    receiver.answers = [500]
    deliver()
    sql_run("UPDATE credits.events SET created_at = now() - interval '8 days'")
    assert deliver().deleted == 1
    assert len(pending(sql_run)) == 1
    # With no receiver, the host reads the outbox: after the retention every event goes.
    assert events.deliver(pool, config.Settings.from_mapping(test_config), None).deleted == 1
    assert sql_run("SELECT count(*) FROM credits.events")[0]["count"] == 0


def test_the_deliver_route_checks_the_secret_and_its_budget(client, auth):
    assert client.get("/api/jobs/credits/deliver").status_code == 401
    assert client.get("/api/jobs/credits/deliver?budget=0", headers=auth).status_code == 400
    assert client.get("/api/jobs/credits/deliver?nope=1", headers=auth).status_code == 400
    body = client.post("/api/jobs/credits/deliver", headers=auth).get_json()
    assert body["success"] and body["complete"] and body["results"]["delivered"] == 0


def test_a_job_call_delivers_its_events(make_app, hooked, receiver, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    client = make_app(**hooked).test_client()
    response = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth_header())
    assert response.status_code == 200
    assert [e["type"] for _, e in receiver.taken] == ["credits.granted"]


def auth_header():
    return {"Authorization": f"Bearer {SECRET}"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"CREDITS_WEBHOOK_URL": "https://example.com/hooks"}, "set together"),
        ({"CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET}, "set together"),
        (
            {"CREDITS_WEBHOOK_URL": "ftp://x", "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET},
            "http(s) URL",
        ),
        (
            {"CREDITS_WEBHOOK_URL": "https://x", "CREDITS_WEBHOOK_SECRET": "whsec_!!not base64"},
            "Standard Webhooks secret",
        ),
        ({"CREDITS_EVENTS_RETENTION_DAYS": "0"}, "CREDITS_EVENTS_RETENTION_DAYS"),
    ],
)
def test_bad_webhook_settings_stop_the_service(test_config, values, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.Settings.from_mapping({**test_config, **values})


def test_the_cli_makes_a_secret_the_service_takes_and_delivers_with_it(
    sql_run, database_url, receiver
):
    made = CliRunner().invoke(cli, ["webhook-secret"])
    secret = made.stdout.strip()
    assert made.exit_code == 0 and secret.startswith("whsec_")
    receiver.webhook = Webhook(secret)
    grant(sql_run, "alice", 10, "a")
    env = {"DATABASE_URL": database_url, "CREDITS_WEBHOOK_URL": receiver.url}
    result = CliRunner().invoke(cli, ["deliver"], env={**env, "CREDITS_WEBHOOK_SECRET": secret})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"]["delivered"] == 1
    assert [e["data"]["amount"] for _, e in receiver.taken] == [10]


def test_a_receiver_answering_garbage_is_a_failed_attempt(sql_run, test_config, pool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer_garbage():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"not http at all\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hooks"
    values = {**test_config, "CREDITS_WEBHOOK_URL": url, "CREDITS_WEBHOOK_SECRET": WEBHOOK_SECRET}
    grant(sql_run, "alice", 10, "a")
    done = events.deliver(pool, config.Settings.from_mapping(values), None)
    server.close()
    assert (done.delivered, done.failed) == (0, 1) and "no answer" in done.last_error
    assert pending(sql_run)[0]["attempts"] == 1
