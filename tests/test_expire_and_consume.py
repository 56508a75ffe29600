"""Spending credits and expiring batches: soonest first, never twice, never below zero."""

import uuid
from datetime import date, datetime, timezone

import psycopg
import pytest

from credits import db, jobs, ledger

# Batches granted on the 10th of March 2026 with 30 days' validity expire on 9 April.
BEFORE_EXPIRY = datetime(2026, 4, 1, tzinfo=timezone.utc)
AFTER_EXPIRY = datetime(2026, 4, 9, tzinfo=timezone.utc)


@pytest.fixture
def alice_granted(pool, settings, add_plan, subscribe):
    """alice: 100 credits expiring 9 April 2026 and 50 that never expire."""
    add_plan("pro", 100, 30)
    add_plan("addon", 50, None)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "addon", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))


def spend(pool, user_id, amount, reference_id, at=None):
    """Spend amount credits of user_id under reference_id: the answer of ledger.spend."""
    return ledger.spend(pool, ledger.SpendRequest(user_id, reference_id, amount=amount, at=at))


def balance_of(pool, user_id):
    return ledger.balance(pool, user_id)[0]


def expire(client, auth):
    response = client.get("/api/jobs/credits/expire", headers=auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def batch_states(sql_run, user_id):
    return [
        (b["amount"], b["remaining"], b["status"])
        for b in sql_run(
            "SELECT * FROM credits.batches WHERE user_id = %s ORDER BY expires_at NULLS LAST",
            (user_id,),
        )
    ]


def ledger_entries(sql_run, user_id):
    return [
        (e["type"], e["amount"])
        for e in sql_run(
            "SELECT * FROM credits.transactions WHERE user_id = %s ORDER BY id", (user_id,)
        )
    ]


def test_expire_response_has_the_documented_shape(client, auth, today):
    body = expire(client, auth)
    assert list(body) == ["success", "jobId", "date", "duration", "results", "complete", "totals"]
    assert body["success"] is True and uuid.UUID(body["jobId"])
    assert body["date"] == today.isoformat()
    assert body["results"] == {"processedBatches": 0, "processedUsers": 0, "totalExpiredAmount": 0}
    assert body["complete"] is True and body["totals"] == body["results"]


def test_expired_batch_is_closed_written_off_and_the_balance_lowered(
    client, auth, pool, sql_run, alice_granted
):
    body = expire(client, auth)
    assert body["results"] == {
        "processedBatches": 1,
        "processedUsers": 1,
        "totalExpiredAmount": 100,
    }
    assert batch_states(sql_run, "alice") == [(100, 0, "expired"), (50, 50, "active")]
    assert ledger_entries(sql_run, "alice") == [("grant", 100), ("grant", 50), ("expire", -100)]
    [entry] = sql_run("SELECT * FROM credits.transactions WHERE type = 'expire'")
    assert entry["reference_id"] == f"expire:{entry['batch_id']}"
    assert str(entry["job_id"]) == body["jobId"]
    assert balance_of(pool, "alice") == 50


def test_expire_twice_expires_nothing_more(client, auth, sql_run, alice_granted):
    expire(client, auth)
    body = expire(client, auth)
    assert body["results"] == {"processedBatches": 0, "processedUsers": 0, "totalExpiredAmount": 0}
    assert ledger_entries(sql_run, "alice").count(("expire", -100)) == 1


def test_batch_not_yet_at_its_date_is_left_alone(pool, settings, add_plan, subscribe, sql_run):
    add_plan("long", 100, 36500)
    subscribe("s1", "alice", "long", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    assert jobs.expire(pool, settings).results["processedBatches"] == 0
    assert batch_states(sql_run, "alice") == [(100, 100, "active")]


def test_batch_expires_exactly_at_its_date(pool, settings, sql_run, alice_granted):
    just_before = datetime(2026, 4, 8, 23, 59, 59, tzinfo=timezone.utc)
    assert (
        jobs.expire(pool, settings, jobs.ExpireOptions(at=just_before)).results["processedBatches"]
        == 0
    )
    assert (
        jobs.expire(pool, settings, jobs.ExpireOptions(at=AFTER_EXPIRY)).results["processedBatches"]
        == 1
    )


def test_partly_spent_batch_expires_only_what_remains(client, auth, pool, sql_run, alice_granted):
    spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    body = expire(client, auth)
    assert body["results"] == {"processedBatches": 1, "processedUsers": 1, "totalExpiredAmount": 70}
    assert batch_states(sql_run, "alice") == [(100, 0, "expired"), (50, 50, "active")]
    assert ledger_entries(sql_run, "alice") == [
        ("grant", 100),
        ("grant", 50),
        ("consume", -30),
        ("expire", -70),
    ]


def test_fully_spent_batch_is_never_expired(client, auth, pool, sql_run, alice_granted):
    spend(pool, "alice", 100, "order-1", at=BEFORE_EXPIRY)
    body = expire(client, auth)
    assert body["results"] == {"processedBatches": 0, "processedUsers": 0, "totalExpiredAmount": 0}
    assert batch_states(sql_run, "alice") == [(100, 0, "consumed"), (50, 50, "active")]


def test_expire_counts_users_once_and_sums_every_batch(pool, settings, add_plan, subscribe):
    add_plan("pro", 100, 30)
    add_plan("small", 7, 10)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "small", "2026-01-10")
    subscribe("s3", "bob", "pro", "2026-01-10")
    for day in ("2026-02-15", "2026-03-15"):
        jobs.grant(pool, settings, date.fromisoformat(day))
    results = jobs.expire(pool, settings).results
    assert results == {"processedBatches": 6, "processedUsers": 2, "totalExpiredAmount": 414}


def test_expire_run_is_recorded(client, auth, sql_run, alice_granted):
    body = expire(client, auth)
    [run] = sql_run("SELECT * FROM credits.job_runs WHERE job = 'expire'")
    assert (str(run["id"]), run["status"], run["results"]) == (
        body["jobId"],
        "succeeded",
        body["results"],
    )


def test_expire_takes_no_parameters(client, auth, sql_run, alice_granted):
    response = client.get("/api/jobs/credits/expire?date=2026-04-01", headers=auth)
    assert response.status_code == 400
    assert "unknown parameter" in response.get_json()["error"]
    assert ledger_entries(sql_run, "alice") == [("grant", 100), ("grant", 50)]


def test_expire_accepts_post(client, auth, alice_granted):
    response = client.post("/api/jobs/credits/expire", headers=auth)
    assert response.status_code == 200
    assert response.get_json()["results"]["totalExpiredAmount"] == 100


def test_expire_logs_start_and_completion(client, auth, caplog):
    job_id = expire(client, auth)["jobId"]
    assert f"[Credits Expire Job {job_id}] Starting daily expire process" in caplog.text
    assert f"[Credits Expire Job {job_id}] Completed in " in caplog.text


def test_consume_takes_the_soonest_expiring_batch_first(pool, sql_run, alice_granted):
    spent = spend(pool, "alice", 120, "order-1", at=BEFORE_EXPIRY)
    assert (spent["balance"], spent["replayed"]) == (30, False)
    assert batch_states(sql_run, "alice") == [(100, 0, "consumed"), (50, 30, "active")]
    assert ledger_entries(sql_run, "alice")[2:] == [("consume", -100), ("consume", -20)]


def test_never_expiring_credits_are_spent_last(pool, settings, sql_run, add_plan, subscribe):
    add_plan("forever", 50, None)
    add_plan("late", 10, 90)
    add_plan("soon", 10, 20)
    for sub, plan in (("s1", "forever"), ("s2", "late"), ("s3", "soon")):
        subscribe(sub, "alice", plan, "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    spend(pool, "alice", 15, "order-1", at=datetime(2026, 3, 20, tzinfo=timezone.utc))
    remaining = {
        b["reference_id"].split(":")[1]: b["remaining"]
        for b in sql_run("SELECT * FROM credits.batches")
    }
    assert remaining == {"s3": 0, "s2": 5, "s1": 50}


def test_consume_skips_batches_past_their_date(pool, sql_run, alice_granted):
    with pytest.raises(ledger.InsufficientCredits, match="50 spendable credits, 60 asked for"):
        spend(pool, "alice", 60, "order-1", at=AFTER_EXPIRY)
    spent = spend(pool, "alice", 50, "order-2", at=AFTER_EXPIRY)
    assert spent["balance"] == 100  # the past-date batch still counts until the expire job runs
    assert batch_states(sql_run, "alice") == [(100, 100, "active"), (50, 0, "consumed")]


def test_short_balance_is_refused_and_changes_nothing(pool, sql_run, alice_granted):
    before = sql_run("SELECT * FROM credits.batches ORDER BY id")
    with pytest.raises(ledger.InsufficientCredits, match="150 spendable credits, 151 asked for"):
        spend(pool, "alice", 151, "order-1", at=BEFORE_EXPIRY)
    assert sql_run("SELECT * FROM credits.batches ORDER BY id") == before
    assert ledger_entries(sql_run, "alice") == [("grant", 100), ("grant", 50)]
    # The refused reference is not burnt: it can be used once credits are there.
    assert spend(pool, "alice", 150, "order-1", at=BEFORE_EXPIRY)["balance"] == 0


def test_user_with_nothing_cannot_spend(pool, sql_run):
    with pytest.raises(ledger.InsufficientCredits, match="'nobody' has 0 spendable credits"):
        spend(pool, "nobody", 1, "order-1")
    assert sql_run("SELECT count(*) AS n FROM credits.transactions")[0]["n"] == 0


def test_consume_retried_with_the_same_reference_spends_once(pool, sql_run, alice_granted):
    first = spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    again = spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert first["balance"] == again["balance"] == 120
    assert ledger_entries(sql_run, "alice").count(("consume", -30)) == 1


def test_reused_reference_with_another_amount_is_refused(pool, sql_run, alice_granted):
    spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    with pytest.raises(ledger.ReferenceReused, match="already spent 30 credits"):
        spend(pool, "alice", 31, "order-1", at=BEFORE_EXPIRY)
    assert balance_of(pool, "alice") == 120


def test_references_belong_to_one_user(pool, settings, add_plan, subscribe, alice_granted):
    subscribe("s3", "bob", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    spend(pool, "alice", 10, "order-1", at=BEFORE_EXPIRY)
    bob = spend(pool, "bob", 10, "order-1", at=BEFORE_EXPIRY)
    assert (bob["replayed"], bob["balance"]) == (False, 90)


@pytest.mark.parametrize(
    "user_id, amount, reference, message",
    [
        ("alice", 0, "r", "above 0"),
        ("alice", -5, "r", "above 0"),
        ("alice", 1.5, "r", "whole number"),
        ("alice", True, "r", "whole number"),
        ("", 5, "r", "user_id"),
        ("alice", 5, "", "reference_id"),
    ],
)
def test_bad_consume_input_is_refused(
    pool, sql_run, alice_granted, user_id, amount, reference, message
):
    with pytest.raises(ledger.CreditsError, match=message):
        spend(pool, user_id, amount, reference)
    assert balance_of(pool, "alice") == 150


def test_balance_lists_batches_in_spending_order(pool, alice_granted):
    total, batches = ledger.balance(pool, "alice")
    assert total == 150
    assert [(b["remaining"], b["expires_at"]) for b in batches] == [
        (100, AFTER_EXPIRY),
        (50, None),
    ]


def test_spend_that_loses_a_deadlock_is_retried_and_spends_once(
    pool, sql_run, alice_granted, lose_deadlocks, caplog
):
    lose_deadlocks("consume", db.ATTEMPTS - 1)
    spent = spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    assert (spent["balance"], spent["replayed"]) == (120, False)
    assert "DeadlockDetected, retrying" in caplog.text
    assert ledger_entries(sql_run, "alice")[-1] == ("consume", -30)
    assert len(ledger_entries(sql_run, "alice")) == 3


def test_spend_that_keeps_losing_deadlocks_is_refused_whole_after_bounded_retries(
    pool, sql_run, alice_granted, lose_deadlocks
):
    lose_deadlocks("consume", db.ATTEMPTS)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        spend(pool, "alice", 30, "order-1", at=BEFORE_EXPIRY)
    assert balance_of(pool, "alice") == 150
    assert ledger_entries(sql_run, "alice") == [("grant", 100), ("grant", 50)]
    tries = sql_run("SELECT last_value FROM credits.lost_deadlocks")[0]["last_value"]
    assert tries == db.ATTEMPTS
