-- get_balance: one user's balance; a user who was never granted anything has none.
SELECT balance
  FROM credits.balances
 WHERE user_id = %(user_id)s
