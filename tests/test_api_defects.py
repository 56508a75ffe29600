"""The app's interface through SQL at its edges: a reversal racing a user's first credits,
replays after a price change or of another kind of call, the clock and the session's time
zone, invisible ids, and what each refusal and answer says (docs/API.md)."""

import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from credits import jobs
from testing.sessions import wait_until, waiting_on_a_lock
from tests.test_api_sql import call, catalog, entries, grant, refused  # noqa: F401 (catalog)

MARCH_1 = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def test_a_reversal_racing_the_users_first_grant_and_spend_is_an_unknown_spend(
    database_url, sql_run
):
    """The reversal locked no balance row (none yet), then saw the spend committed meanwhile:
    it wrote its entries with no balance (23502) or twice (23505)."""
    app = psycopg.connect(database_url)  # the user's first grant and spend, not committed
    app.execute("SELECT credits.grant_credits('zoe', 10, 'bonus', 'g1')")
    app.execute("SELECT credits.spend('zoe', 4, 'order-1')")
    # A session asking for the ledger whole, queued behind the app: it holds the reversal
    # between its look at the balance and its look at the ledger until the app has committed.
    blocker = psycopg.connect(database_url)
    locking = threading.Thread(
        target=lambda: blocker.execute("LOCK TABLE credits.transactions IN ACCESS EXCLUSIVE MODE")
    )
    locking.start()
    wait_until(lambda: waiting_on_a_lock(database_url, "LOCK TABLE%") == 1)
    outcome = {}

    def reverse():
        with psycopg.connect(database_url, autocommit=True) as conn:
            try:
                conn.execute("SELECT credits.reverse_spend('zoe', 'order-1')")
                outcome["answer"] = "reversed"
            except psycopg.Error as exc:
                outcome["answer"] = exc.sqlstate

    reversal = threading.Thread(target=reverse)
    reversal.start()
    wait_until(
        lambda: "answer" in outcome or waiting_on_a_lock(database_url, "%reverse_spend%") == 1
    )
    app.commit()
    locking.join(timeout=10)
    blocker.rollback()
    reversal.join(timeout=10)
    app.close()
    blocker.close()
    assert outcome["answer"] == "CR006"
    # Asked again, it reverses the spend.
    assert call(sql_run, "credits.reverse_spend('zoe', 'order-1')")["returned"] == 4


@pytest.mark.usefixtures("catalog")
def test_a_replay_after_the_pack_price_changed_answers_the_first_purchase(sql_run):
    first = call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")
    sql_run("UPDATE credits.packages SET credits = 600 WHERE package_id = 'starter'")
    again = call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")
    assert again["replayed"] and again["amount"] == 550 and again["credits"] == 500
    assert {**again, "replayed": False} == first
    assert entries(sql_run, "alice") == [("grant", 550, 550)]


@pytest.mark.usefixtures("catalog")
def test_a_replay_after_the_service_cost_changed_answers_the_first_spend(sql_run):
    grant(sql_run, "alice", 100, "g1")
    first = call(sql_run, "credits.spend_service('alice', 'image', 3, 'job-1')")
    sql_run("UPDATE credits.services SET cost = 12 WHERE service = 'image'")
    again = call(sql_run, "credits.spend_service('alice', 'image', 3, 'job-1')")
    assert again["replayed"] and again["amount"] == 30 and again["balance"] == 70
    assert again["draws"] == [{"batch_id": d["batch_id"], "amount": 30} for d in first["draws"]]
    # Another quantity under the same reference is another spend.
    refused(sql_run, "CR002", "credits.spend_service('alice', 'image', 2, 'job-1')")


@pytest.mark.usefixtures("catalog")
def test_a_replay_of_a_spend_for_another_service_of_the_same_cost_is_refused(sql_run):
    grant(sql_run, "alice", 100, "g1")
    call(sql_run, "credits.spend_service('alice', 'image', 1, 'job-1')")  # 10 credits
    message = refused(sql_run, "CR002", "credits.spend_service('alice', 'chat', 5, 'job-1')")
    assert "'image'" in message
    refused(sql_run, "CR002", "credits.spend('alice', 10, 'job-1')")
    answer = call(sql_run, "credits.spend_service('alice', 'image', 1, 'job-1')")
    assert answer["replayed"] and answer["service"] == "image"


@pytest.mark.usefixtures("catalog")
def test_a_pack_bought_under_a_plain_grants_reference_is_refused(sql_run):
    call(sql_run, "credits.grant_credits('alice', 550, 'purchase', 'pay-1')")
    refused(sql_run, "CR002", "credits.buy_package('alice', 'starter', 'pay-1')")
    call(sql_run, "credits.buy_package('bob', 'big', 'pay-2')")
    refused(sql_run, "CR002", "credits.buy_package('bob', 'starter', 'pay-2')")


CLOCKS = [
    ("credits.grant_credits_at({at}, 'a', 5, 'bonus', 'r', 10)"),
    ("credits.buy_package_at({at}, 'a', 'starter', 'pay-1')"),
    ("credits.grant_registration_bonus_at({at}, 'a')"),
    ("credits.spend_at({at}, 'a', 5, NULL, NULL, 'r')"),
    ("credits.reverse_spend_at({at}, 'a', 'seed-spend')"),
    ("credits.void_grant_at({at}, 'seed')"),
    ("credits.account_at({at}, 'a')"),
]


@pytest.mark.usefixtures("catalog")
@pytest.mark.parametrize("statement", CLOCKS)
@pytest.mark.parametrize(
    "at, sqlstate", [("NULL", "22004"), ("'infinity'", "22004"), ("'-infinity'", "22004")]
)
def test_a_clock_that_is_null_or_infinite_is_refused(sql_run, statement, at, sqlstate):
    """A NULL or infinite clock made batches that never expire."""
    call(sql_run, "credits.grant_credits('a', 100, 'bonus', 'seed')")
    call(sql_run, "credits.spend('a', 1, 'seed-spend')")
    message = refused(sql_run, sqlstate, statement.format(at=f"{at}::timestamptz"))
    assert message.startswith("at must")


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Paris"])
def test_a_grants_validity_days_are_whole_days_whatever_the_session_time_zone(sql_run, zone):
    sql_run(f"SET TIME ZONE '{zone}'")
    answer = call(
        sql_run,
        "credits.grant_credits_at(%s, 'alice', 5, 'bonus', 'r1', 130)",
        MARCH_1,
    )
    assert datetime.fromisoformat(answer["expires_at"]) - MARCH_1 == timedelta(days=130)


@pytest.mark.parametrize(
    "user_id",
    ["\u00a0", "\u3000", "\u200b", "\ufeff", "\u2028", "alice\u200b", "\u00a0alice", "bob\u3000"],
)
def test_an_id_of_invisible_characters_or_unusual_spaces_is_refused(sql_run, user_id):
    message = refused(sql_run, "22023", "credits.grant_credits(%s, 5, 'bonus', 'r1')", user_id)
    assert message.startswith("user_id must not contain invisible")
    refused(sql_run, "22023", "credits.spend('alice', 5, %s)", f"order{user_id}")


def test_a_spend_of_a_null_service_names_the_service(sql_run):
    message = refused(sql_run, "22004", "credits.spend_service('a', NULL, 1, 'r')")
    assert message == "service must not be null"


def test_an_account_for_null_statuses_is_refused(sql_run):
    message = refused(sql_run, "22004", "credits.account('a', NULL)")
    assert message == "eligible_statuses must not be null"


def test_voiding_an_expired_grant_leaves_it_expired(pool, settings, sql_run, now):
    call(
        sql_run,
        "credits.grant_credits_at(%s, 'alice', 10, 'promotion', 'promo-1', 1)",
        now - timedelta(days=3),
    )
    jobs.expire(pool, settings)
    answer = call(sql_run, "credits.void_grant('promo-1')")
    assert (answer["voided"], answer["expired"], answer["spent"]) == (0, 10, 0)
    [batch] = sql_run("SELECT status FROM credits.batches")
    assert batch["status"] == "expired"
    assert call(sql_run, "credits.void_grant('promo-1')") == answer


@pytest.mark.usefixtures("catalog")
def test_a_voids_spent_leaves_out_credits_reversed_since(sql_run):
    call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")
    call(sql_run, "credits.spend('alice', 100, 'order-1')")
    assert call(sql_run, "credits.void_grant('pay-1')")["spent"] == 100
    call(sql_run, "credits.reverse_spend('alice', 'order-1')")  # given back, and lapsed
    again = call(sql_run, "credits.void_grant('pay-1')")
    assert again["replayed"] and (again["voided"], again["spent"]) == (450, 0)


def test_a_reference_taken_by_another_user_is_refused_without_naming_that_user(sql_run):
    call(sql_run, "credits.grant_credits('alice', 40, 'bonus', 'r1')")
    message = refused(sql_run, "CR002", "credits.grant_credits('bob', 40, 'bonus', 'r1')")
    assert "alice" not in message and "40" not in message
    assert message == "reference_id 'r1' was already used for a grant to another user"
