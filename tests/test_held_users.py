"""A user held by an open app transaction delays only that user, never a job's chunk.

A spend, grant or reversal locks the user's balance row for the length of the app's
transaction. The jobs skip such a balance (FOR UPDATE SKIP LOCKED) rather than wait for it:
the rest of the chunk is done, the run says it is not complete, and the held user's keys are
tried again by the stripe, in the same call once its walk is done, or in the next call.
"""

import threading
from datetime import date, datetime, timezone

import psycopg
import pytest

from credits import config, jobs
from testing.seeders import add_one_batch_each, add_subscribers
from testing.sessions import LOCK_BALANCE, wait_until, waiting_on_a_lock

USERS = 2000
MAY = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture
def big_chunks(test_config):
    """One chunk holds every user, as a 25,000-key chunk holds a whole small deployment."""
    return config.Settings.from_mapping({**test_config, "CREDITS_CHUNK_SIZE": "25000"})


@pytest.fixture
def held(database_url):
    """hold(user): an app transaction that locks the user's balance and stays open."""
    sessions = []

    def hold(user_id):
        session = psycopg.connect(database_url)
        session.execute(LOCK_BALANCE, (user_id,))
        sessions.append(session)
        return session

    yield hold
    for session in sessions:
        session.close()


def in_a_thread(call, timeout=30):
    """call()'s answer, failing the test when it does not come within timeout seconds."""
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(answer=call()), daemon=True)
    runner.start()
    runner.join(timeout)
    assert not runner.is_alive(), "the run waited for the held user"
    return outcome["answer"]


def test_expire_does_every_other_user_while_one_is_held_and_that_user_next_call(
    pool, big_chunks, sql_run, held
):
    add_one_batch_each(sql_run, USERS, expires_at="2026-04-01")
    holder = held("user-000007")
    options = jobs.ExpireOptions(at=MAY, budget=3)
    run = in_a_thread(lambda: jobs.expire(pool, big_chunks, options))
    assert run.results["processedUsers"] == USERS - 1
    assert not run.complete
    held_balance = "SELECT balance FROM credits.balances WHERE user_id = 'user-000007'"
    assert sql_run(held_balance) == [{"balance": 10}]
    holder.rollback()
    again = jobs.expire(pool, big_chunks, jobs.ExpireOptions(at=MAY))
    assert again.complete and again.results["processedUsers"] == 1
    assert sql_run(held_balance) == [{"balance": 0}]


def test_expire_without_a_budget_does_not_wait_for_a_held_user(pool, big_chunks, sql_run, held):
    """The CLI's expire has no budget: it once waited for the app's transaction forever."""
    add_one_batch_each(sql_run, 50, expires_at="2026-04-01")
    held("user-000003")
    run = in_a_thread(lambda: jobs.expire(pool, big_chunks, jobs.ExpireOptions(at=MAY)))
    assert run.results["processedUsers"] == 49 and not run.complete


def test_grant_does_every_other_subscription_while_one_user_is_held_and_it_next_call(
    pool, big_chunks, sql_run, add_plan, held
):
    add_plan("pro", 10, 30)
    add_subscribers(sql_run, USERS)
    jobs.grant(pool, big_chunks, date(2026, 3, 15))  # every user has a balance now
    holder = held("user-7")
    options = jobs.GrantOptions(budget=3)
    run = in_a_thread(lambda: jobs.grant(pool, big_chunks, date(2026, 4, 15), options))
    assert run.results == {
        "processed": USERS - 1,
        "successful": USERS - 1,
        "skipped": 0,
        "failed": 0,
    }
    assert not run.complete
    april = "SELECT count(*) AS n FROM credits.batches WHERE grant_period = '2026-04'"
    assert sql_run(april) == [{"n": USERS - 1}]
    holder.commit()
    again = jobs.grant(pool, big_chunks, date(2026, 4, 15))
    assert again.complete
    assert again.results == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert sql_run(april) == [{"n": USERS}]
    assert sql_run("SELECT balance FROM credits.balances WHERE user_id = 'user-7'") == [
        {"balance": 20}
    ]


def test_a_user_still_held_keeps_the_pass_open_and_the_next_day_runs_all_the_same(
    pool, big_chunks, sql_run, add_plan, held
):
    add_plan("pro", 10, 30)
    add_subscribers(sql_run, 20)
    jobs.grant(pool, big_chunks, date(2026, 3, 15))
    holder = held("user-3")
    first = in_a_thread(lambda: jobs.grant(pool, big_chunks, date(2026, 4, 15)))
    assert not first.complete and first.results["successful"] == 19
    # Still held the next day: that day's pass is done around it, and the run says so.
    second = in_a_thread(lambda: jobs.grant(pool, big_chunks, date(2026, 4, 16)))
    assert not second.complete
    holder.rollback()
    third = jobs.grant(pool, big_chunks, date(2026, 4, 17))
    assert third.complete
    assert sql_run("SELECT count(*) AS n FROM credits.batches") == [{"n": 40}]


def test_an_app_transaction_over_two_users_does_not_deadlock_with_expire(
    database_url, pool, big_chunks, sql_run, held
):
    """The app holds user 2, then asks for user 1: expire once held user 1 and waited for
    user 2, and the database aborted one of the two (40P01, deadlock detected)."""
    add_one_batch_each(sql_run, 2, expires_at="2026-04-01")
    app = held("user-000002")
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            run=jobs.expire(pool, big_chunks, jobs.ExpireOptions(at=MAY))
        ),
        daemon=True,
    )
    runner.start()
    wait_until(lambda: "run" in outcome or waiting_on_a_lock(database_url, "%lock_expiring%") == 1)
    app.execute(LOCK_BALANCE, ("user-000001",))  # no deadlock: expire waits for nobody
    app.commit()
    runner.join(timeout=10)
    assert outcome["run"].results["processedUsers"] == 1 and not outcome["run"].complete
    assert jobs.expire(pool, big_chunks, jobs.ExpireOptions(at=MAY)).complete
