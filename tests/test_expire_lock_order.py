"""Expiry and spending must not deadlock: expire locks balances first, as spending does.

lock_expiring_balances.sql locks the balances of the users who have batches to expire, in one
statement; expire_batches.sql then expires batches in another. A batch granted between the
two (a back-filled grant commits meanwhile) once had its user's balance lowered without that
balance having been locked first, and a consumer of that user then deadlocked with the expire
run (found by the load run, reliability/load.py). expire_batches now touches only the users
whose balances were locked; the late batch waits for the next pass. A balance an app
transaction holds is skipped rather than waited for (SKIP LOCKED), and tried again later.
"""

from datetime import date, datetime, timezone

import psycopg

from credits import jobs
from testing.sessions import LOCK_BALANCE

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
    consumer = psycopg.connect(database_url)
    try:
        # expire skips bob's held balance rather than waiting for it, and says it is not done.
        first = jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW))
        assert first.results["processedUsers"] == 0 and not first.complete
        # Meanwhile a back-filled grant gives alice a batch that is already past its date.
        jobs.grant(pool, settings, date(2026, 4, 15))
        consumer.execute(LOCK_BALANCE, ("alice",))  # a spend of alice's: her balance first
        holder.commit()  # bob's spend ends
        # The pass carries on with its held key, bob, and is done: alice's batch came due
        # after the pass had walked past her, and waits for the next pass.
        second = jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW))
        assert second.results["processedUsers"] == 1 and second.complete
        # The next pass finds alice held by her spend: skipped, nothing waits or deadlocks.
        third = jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW))
        assert third.results["processedUsers"] == 0 and not third.complete
        # The spend draws alice's batches, as consume_batches.sql does.
        consumer.execute(
            "UPDATE credits.batches SET remaining = remaining WHERE user_id = %s", ("alice",)
        )
        consumer.commit()
    finally:
        consumer.close()
        holder.close()
    last = jobs.expire(pool, settings, jobs.ExpireOptions(at=NOW))
    assert last.results["processedUsers"] == 1 and last.complete  # alice
