-- find_consumption: how much an earlier spend with this user's reference_id took, if any;
-- a caller's retry with the same reference_id is answered from here instead of spending again.
SELECT -sum(amount) AS amount
  FROM credits.transactions
 WHERE user_id = %(user_id)s
   AND type = 'consume'
   AND reference_id = %(reference_id)s
