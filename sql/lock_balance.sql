-- lock_balance: take one user's balance row for the rest of the transaction. Every change to
-- a user's batches happens under this lock, so two spends of one user take turns.
SELECT balance
  FROM credits.balances
 WHERE user_id = %(user_id)s
   FOR UPDATE
