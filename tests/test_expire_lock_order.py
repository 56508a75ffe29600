"""Expiry and spending must not deadlock: expire locks balances first, as spending does.

lock_expiring_balances.sql locks the balances of the users who have batches to expire, in one
statement; expire_batches.sql then expires batches in another. A batch granted between the
two (a back-filled grant commits meanwhile) once had its user's balance lowered without that
balance having been locked first, and a consumer of that user then deadlocked with the expire
run (found by the load run, reliability/load.py). expire_batches now touches only the users
whose balances were locked; the late batch waits for the next pass.
"""

import threading
from datetime import date, datetime, timezone

import psycopg

from credits import jobs
from testing.sessions import LOCK_BALANCE, wait_until, waiting_on_a_lock

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_a_batch_granted_while_expire_starts_does_not_deadlock_a_consumer(
    database_url, pool, settings, add_plan, subscribe
):
    add_plan("month", 100, 30)
    add_plan("forever", 10)
    subscribe("b1", "bob", "month", "2026-01-10")
    subscribe("a1", "alice", "forever", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 4, 15))  # bob's expires 10 May
    jobs.grant(pool, settings, date(2026, 3, 15))  # alice: never expires
    subscribe("a2", "alice", "month", "2026-01-10")  # alice's grant for April comes later

    holder = psycopg.connect(database_url)  # a spend of bob's, in progress
    holder.execute(LOCK_BALANCE, ("bob",))
    outcome = {}

    def expire():
        try:
            outcome["expire"] = jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW))
        except Exception as exc:  # asserted on below
            outcome["expire"] = exc

    runner = threading.Thread(target=expire)
    runner.start()
    # expire has chosen whose balances to lock (bob only) and waits for bob's.
    wait_until(lambda: waiting_on_a_lock(database_url, "%lock_expiring_balances%") >= 1)
    # Meanwhile a back-filled grant gives alice a batch that is already past its date.
    jobs.grant(pool, settings, date(2026, 4, 15))
    consumer = psycopg.connect(database_url)  # a spend of alice's begins: her balance first
    consumer.execute(LOCK_BALANCE, ("alice",))
    holder.commit()  # bob's spend ends; expire goes on, to bob's batch only
    runner.join(timeout=30)
    try:
        # The spend draws alice's batches, as consume_batches.sql does.
        consumer.execute(
            "UPDATE credits.batches SET remaining = remaining WHERE user_id = %s", ("alice",)
        )
        consumer.commit()
    finally:
        consumer.close()
        holder.close()
    assert isinstance(outcome["expire"], jobs.JobRun), outcome
    assert outcome["expire"].results["processedUsers"] == 1  # bob
    # alice's batch came due after expire had locked its users: the day's next pass takes it.
    assert jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW)).results["processedUsers"] == 1
