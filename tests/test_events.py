"""The events outbox: every change of credits writes its events in its own transaction, once."""

from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from credits import db, events, jobs

MARCH_15 = date(2026, 3, 15)


def outbox(sql_run, after_id=0):
    """The events written, oldest first, through the documented read function."""
    return sql_run(
        "SELECT id, type, user_id, payload FROM credits.events_after(%s, 1000)", (after_id,)
    )


def types(sql_run):
    return [(e["type"], e["user_id"]) for e in outbox(sql_run)]


def grant(sql_run, user, amount, reference, days=None):
    return sql_run(
        "SELECT credits.grant_credits(%s, %s, 'bonus', %s, %s) AS a",
        (user, amount, reference, days),
    )[0]["a"]


def notifications(sql_run, expiring_days=None, low_balance=None):
    sql_run("INSERT INTO credits.notifications VALUES (true, %s, %s)", (expiring_days, low_balance))


def test_a_grant_writes_one_granted_event_with_its_batch(sql_run):
    grant(sql_run, "alice", 100, "welcome")
    (event,) = outbox(sql_run)
    assert event["type"] == "credits.granted"
    assert event["user_id"] == "alice"
    payload = event["payload"]
    assert payload["amount"] == 100 and payload["balance"] == 100
    assert payload["reference_id"] == "welcome" and payload["source"] == "bonus"
    assert payload["batch_id"] > 0 and payload["job_id"] is None


def test_a_replayed_grant_writes_no_second_event(sql_run):
    grant(sql_run, "alice", 100, "welcome")
    grant(sql_run, "alice", 100, "welcome")
    assert types(sql_run) == [("credits.granted", "alice")]


def test_a_spend_across_batches_is_one_spent_event(sql_run):
    grant(sql_run, "alice", 30, "a", 10)
    grant(sql_run, "alice", 50, "b")
    sql_run("SELECT credits.spend('alice', 40, 'job-1', '{\"doc\": 7}')")
    spent = outbox(sql_run)[-1]
    assert spent["type"] == "credits.spent"
    assert spent["payload"]["amount"] == 40 and spent["payload"]["balance"] == 40
    assert spent["payload"]["metadata"] == {"doc": 7}
    assert [b["amount"] for b in spent["payload"]["batches"]] == [30, 10]


def test_a_refused_spend_leaves_no_event(sql_run):
    grant(sql_run, "alice", 10, "a")
    with pytest.raises(psycopg.Error):
        sql_run("SELECT credits.spend('alice', 40, 'too-much')")
    assert types(sql_run) == [("credits.granted", "alice")]


def test_a_rolled_back_transaction_leaves_no_event(database_url, sql_run):
    grant(sql_run, "alice", 50, "a")
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT credits.spend('alice', 20, 'rolled-back')")
        conn.rollback()
    assert types(sql_run) == [("credits.granted", "alice")]
    assert sql_run("SELECT balance FROM credits.balances")[0]["balance"] == 50


def test_a_reversal_across_batches_is_one_reversed_event(sql_run):
    grant(sql_run, "alice", 30, "a")
    grant(sql_run, "alice", 50, "b")
    sql_run("SELECT credits.spend('alice', 40, 'job-1')")
    sql_run("SELECT credits.reverse_spend('alice', 'job-1')")
    reversed_ = [e for e in outbox(sql_run) if e["type"] == "credits.reversed"]
    assert len(reversed_) == 1
    payload = reversed_[0]["payload"]
    assert payload["amount"] == 40 and payload["lapsed"] == 0 and payload["balance"] == 80
    assert len(payload["batches"]) == 2


def test_a_void_writes_a_voided_event(sql_run):
    grant(sql_run, "alice", 30, "gift")
    sql_run("SELECT credits.void_grant('gift')")
    voided = outbox(sql_run)[-1]
    assert voided["type"] == "credits.voided"
    assert voided["payload"]["amount"] == 30 and voided["payload"]["balance"] == 0


def test_the_grant_job_writes_one_event_per_grant_and_the_expire_job_one_per_user(
    pool, settings, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    for n in range(3):
        subscribe(f"s{n}", f"user{n}", "pro", "2026-01-10")
    subscribe("s9", "user0", "pro", "2026-01-10")
    jobs.grant(pool, settings, MARCH_15)
    granted = outbox(sql_run)
    assert sorted(e["user_id"] for e in granted) == ["user0", "user0", "user1", "user2"]
    assert {e["payload"]["source"] for e in granted} == {"subscription"}
    jobs.grant(pool, settings, MARCH_15)  # nothing due: nothing written
    assert len(outbox(sql_run)) == 4

    jobs.expire(pool, settings, jobs.ExpireOptions(at=datetime(2026, 4, 30, tzinfo=timezone.utc)))
    expired = outbox(sql_run, granted[-1]["id"])
    assert [(e["type"], e["user_id"]) for e in expired] == [
        ("credits.expired", "user0"),
        ("credits.expired", "user1"),
        ("credits.expired", "user2"),
    ]
    assert expired[0]["payload"]["amount"] == 200 and len(expired[0]["payload"]["batches"]) == 2
    assert expired[0]["payload"]["balance"] == 0


def test_a_balance_falling_under_the_threshold_is_low_once_then_recovers_once(sql_run):
    notifications(sql_run, low_balance=20)
    grant(sql_run, "alice", 50, "a")
    sql_run("SELECT credits.spend('alice', 35, 's1')")  # 15: low
    sql_run("SELECT credits.spend('alice', 5, 's2')")  # 10: still low, no repeat
    grant(sql_run, "alice", 5, "b")  # 15: still low
    grant(sql_run, "alice", 10, "c")  # 25: recovered
    grant(sql_run, "alice", 10, "d")  # 35: no repeat
    sql_run("SELECT credits.spend('alice', 30, 's3')")  # 5: low again
    balance_events = [e for e in outbox(sql_run) if e["type"].startswith("credits.balance")]
    assert [(e["type"], e["payload"]["balance"]) for e in balance_events] == [
        ("credits.balance_low", 15),
        ("credits.balance_recovered", 25),
        ("credits.balance_low", 5),
    ]
    assert balance_events[0]["payload"]["low_balance"] == 20


def test_without_a_threshold_no_balance_event_is_written(sql_run):
    grant(sql_run, "alice", 50, "a")
    sql_run("SELECT credits.spend('alice', 45, 's1')")
    assert [t for t, _ in types(sql_run)] == ["credits.granted", "credits.spent"]


def test_the_expire_job_announces_each_batch_lapsing_soon_once(
    pool, settings, sql_run, add_plan, subscribe
):
    notifications(sql_run, expiring_days=7)
    add_plan("pro", 100, 30)  # granted 10 March, lapses 9 April
    add_plan("forever", 10, None)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "forever", "2026-01-10")
    jobs.grant(pool, settings, MARCH_15)
    april_1 = datetime(2026, 4, 1, tzinfo=timezone.utc)
    jobs.expire(pool, settings, jobs.ExpireOptions(at=april_1))  # 8 days before: too early
    assert not [t for t, _ in types(sql_run) if t == "credits.expiring_soon"]
    for day in (3, 4):
        at = april_1 + timedelta(days=day)
        jobs.expire(pool, settings, jobs.ExpireOptions(at=at))
    soon = [e for e in outbox(sql_run) if e["type"] == "credits.expiring_soon"]
    assert len(soon) == 1
    assert soon[0]["user_id"] == "alice" and soon[0]["payload"]["amount"] == 100
    assert soon[0]["payload"]["expires_at"].startswith("2026-04-09")


def test_a_run_marked_failed_writes_job_failed_once(sql_run):
    sql_run(
        "INSERT INTO credits.job_runs (id, job, status) "
        "VALUES ('00000000-0000-0000-0000-000000000001', 'grant', 'running')"
    )
    sql_run("UPDATE credits.job_runs SET status = 'failed', error = 'boom'")
    sql_run("UPDATE credits.job_runs SET error = 'boom again'")  # no second event
    (failed,) = outbox(sql_run)
    assert failed["type"] == "credits.job_failed" and failed["user_id"] is None
    assert failed["payload"]["error"] == "boom" and failed["payload"]["job"] == "grant"


def test_a_listener_hears_of_committed_events_only(database_url, sql_run):
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN credits_events")
        with psycopg.connect(database_url) as conn:
            conn.execute("SELECT credits.grant_credits('bob', 5, 'bonus', 'rolled-back')")
            conn.rollback()
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
        grant(sql_run, "alice", 5, "kept")
        (note,) = list(listener.notifies(timeout=5, stop_after=1))
    assert int(note.payload) == outbox(sql_run)[-1]["id"]


def test_the_read_function_pages_by_cursor_and_refuses_bad_arguments(sql_run):
    for n in range(5):
        grant(sql_run, "alice", 1, f"r{n}")
    first = sql_run("SELECT id FROM credits.events_after(0, 2)")
    after = sql_run("SELECT id FROM credits.events_after(%s, 10)", (first[-1]["id"],))
    assert len(first) == 2 and len(after) == 3 and after[0]["id"] > first[-1]["id"]
    for bad in ("-1, 10", "0, 0", "0, 1001", "NULL, 10"):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            sql_run(f"SELECT * FROM credits.events_after({bad})")


def scan(pool):
    """One expiring-soon scan now, in its own transaction, as the expire job runs it."""
    with db.connection(pool) as conn, conn.transaction():
        return events.notice_expiring(conn, None)


def soon_batches(sql_run):
    soon = [e for e in outbox(sql_run) if e["type"] == "credits.expiring_soon"]
    return [e["payload"]["batch_id"] for e in soon]


def test_a_batch_committed_after_a_scan_began_is_announced_by_the_next_scan_once(
    database_url, pool, sql_run
):
    notifications(sql_run, expiring_days=7)
    with psycopg.connect(database_url) as writer:  # a transaction open across the scan
        writer.execute("SELECT credits.grant_credits('bob', 5, 'bonus', 'late', 3)")
        assert scan(pool) == 0  # it cannot see bob's batch yet
    [batch] = sql_run("SELECT id FROM credits.batches WHERE user_id = 'bob'")
    assert scan(pool) == 1 and soon_batches(sql_run) == [batch["id"]]
    assert scan(pool) == 0


def test_a_batch_announced_is_not_announced_again_after_a_spend_from_it(pool, sql_run):
    notifications(sql_run, expiring_days=7)
    grant(sql_run, "alice", 10, "a", 3)
    assert scan(pool) == 1
    sql_run("SELECT credits.spend('alice', 4, 'order-1')")
    grant(sql_run, "alice", 10, "b", 30)  # lapses past the horizon: not yet
    assert scan(pool) == 0
    assert len(soon_batches(sql_run)) == 1


def test_a_listener_hears_of_a_scans_events_once_it_commits(database_url, pool, sql_run):
    notifications(sql_run, expiring_days=7)
    grant(sql_run, "alice", 10, "a", 3)
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN credits_events")
        assert scan(pool) == 1
        (note,) = list(listener.notifies(timeout=5, stop_after=1))
    assert int(note.payload) == outbox(sql_run)[-1]["id"]
    assert outbox(sql_run)[-1]["type"] == "credits.expiring_soon"


def test_a_batch_spent_to_nothing_at_its_scan_gets_no_notice_once_given_back(pool, sql_run):
    # As docs/EVENTS.md says: the scan that reaches a batch announces it if it holds credits.
    notifications(sql_run, expiring_days=7)
    grant(sql_run, "alice", 10, "a", 3)
    sql_run("SELECT credits.spend('alice', 10, 'order-1')")
    assert scan(pool) == 0
    sql_run("SELECT credits.reverse_spend('alice', 'order-1')")
    assert sql_run("SELECT status, remaining FROM credits.batches") == [
        {"status": "active", "remaining": 10}
    ]
    assert scan(pool) == 0 and soon_batches(sql_run) == []


def test_a_scan_that_rolls_back_leaves_its_batches_to_the_next(pool, sql_run):
    notifications(sql_run, expiring_days=7)
    grant(sql_run, "alice", 10, "a", 3)
    with db.connection(pool) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            assert events.notice_expiring(conn, None) == 1
            raise RuntimeError("the expire job failed after its scan")
    assert soon_batches(sql_run) == []
    assert scan(pool) == 1 and len(soon_batches(sql_run)) == 1


def test_notice_statement_without_the_setting_writes_nothing(pool, sql_run):
    grant(sql_run, "alice", 10, "a", 3)
    with pool.connection() as conn:
        assert events.notice_expiring(conn, None) == 0
    assert types(sql_run) == [("credits.granted", "alice")]


def test_load_plans_sets_the_notifications_and_refuses_bad_ones(run_cli, sql_run, tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text("[notifications]\nexpiring_days = 7\nlow_balance = 20\n")
    assert run_cli("load-plans", str(path)).exit_code == 0
    assert sql_run("SELECT expiring_days, low_balance FROM credits.notifications") == [
        {"expiring_days": 7, "low_balance": 20}
    ]
    for bad in ("expiring_days = 0", "low_balance = -5", "expiring_days = 40000", "often = 1"):
        path.write_text(f"[notifications]\n{bad}\n")
        result = run_cli("load-plans", str(path))
        assert result.exit_code == 2 and "[notifications]" in result.output, result.output
    assert sql_run("SELECT low_balance FROM credits.notifications")[0]["low_balance"] == 20


def test_a_run_that_fails_writes_job_failed(pool, settings, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    sql_run("ALTER TABLE credits.transactions ADD CONSTRAINT no_grant CHECK (type <> 'grant')")
    with pytest.raises(psycopg.errors.CheckViolation):
        jobs.grant(pool, settings, MARCH_15)
    (failed,) = outbox(sql_run)
    assert failed["type"] == "credits.job_failed" and failed["payload"]["status"] == "failed"
    assert "no_grant" in failed["payload"]["error"]


def test_a_run_found_abandoned_writes_job_failed(pool, sql_run):
    lost = "00000000-0000-0000-0000-000000000002"
    sql_run(
        f"INSERT INTO credits.job_runs (id, job, status) VALUES ('{lost}', 'expire', 'running')"
    )
    with pool.connection() as conn:
        conn.execute(
            db.queries["abandon_job_runs"],
            {"job": "expire", "job_id": "00000000-0000-0000-0000-000000000003"},
        )
    (event,) = outbox(sql_run)
    assert event["type"] == "credits.job_failed"
    assert event["payload"]["status"] == "abandoned" and event["payload"]["job_id"] == lost
