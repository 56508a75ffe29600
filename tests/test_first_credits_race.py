"""A spend that begins before a user's first credits arrive holds no lock on them.

Every call that moves a user's credits locks the user's balance row first, so that two calls
never draw the same batch at once. A user's first grant creates that row. A spend that looked
for the row just before the first grant committed found none and locked nothing; its next
statement saw the new batch and drew it beside a spend that held the lock, and the batch went
below zero (a CheckViolation, found by the load run, reliability/load.py). A call that finds
no balance row now moves nothing: the user had no credits when it began.
"""

import threading

import psycopg

from testing.sessions import LOCK_BALANCE, wait_until, waiting_on_a_lock

LATE_SPEND = "SELECT credits.spend(%s, 60, 'late-spend')"


class Caller(threading.Thread):
    """One API call on a connection of its own, as the host app makes it; outcome after join."""

    def __init__(self, database_url, statement, params):
        super().__init__()
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.statement, self.params = statement, params

    def run(self):
        try:
            self.outcome = self.conn.execute(self.statement, self.params).fetchone()[0]
        except psycopg.Error as exc:
            self.outcome = exc
        finally:
            self.conn.close()


def test_a_spend_that_began_before_the_first_credits_spends_none_of_them(database_url, sql_run):
    gate = psycopg.connect(database_url)  # holds the spend between its first two statements
    spender = psycopg.connect(database_url)
    caller = Caller(database_url, LATE_SPEND, ("bob",))
    try:
        gate.execute("LOCK TABLE credits.transactions IN ACCESS EXCLUSIVE MODE")
        caller.start()
        # The spend has looked for bob's balance row and found none; it waits to read the
        # ledger (or, finding no row, has answered already).
        wait_until(lambda: not caller.is_alive() or waiting_on_a_lock(database_url, "%late-spend%"))
        # bob's first grant commits: his balance row and a batch of 100 (its ledger entry below).
        sql_run(
            "INSERT INTO credits.balances (user_id, balance) VALUES ('bob', 100);"
            "INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining) "
            "VALUES ('bob', 'bonus', 'welcome', 100, 100)"
        )
        # A spend of 50 of bob's begins with his balance, as every call does, and draws the batch.
        spender.execute(LOCK_BALANCE, ("bob",))
        spender.execute("UPDATE credits.batches SET remaining = 50 WHERE user_id = 'bob'")
        spender.execute("UPDATE credits.balances SET balance = 50 WHERE user_id = 'bob'")
        gate.rollback()
        # The late spend ends, or waits for the batch the first one holds.
        wait_until(lambda: not caller.is_alive() or waiting_on_a_lock(database_url, "%late-spend%"))
        spender.execute(
            "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id) "
            "SELECT 'bob', id, t.type, t.amount, t.reference_id FROM credits.batches, "
            "(VALUES ('grant', 100, 'welcome'), ('consume', -50, 'first-spend')) "
            "AS t (type, amount, reference_id) WHERE user_id = 'bob'"
        )
        spender.commit()
    finally:
        gate.close()
        spender.close()
        caller.join(timeout=30)
    # Refused as it would have been a moment earlier: bob had no credits.
    assert isinstance(caller.outcome, psycopg.Error), caller.outcome
    assert caller.outcome.sqlstate == "CR001", caller.outcome
    assert sql_run(
        "SELECT b.balance, t.remaining FROM credits.balances b "
        "JOIN credits.batches t USING (user_id) WHERE user_id = 'bob'"
    ) == [{"balance": 50, "remaining": 50}]
