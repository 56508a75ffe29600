-- find_user_grant: the batch one user was granted under a reference (the batches' reference
-- index), as the console shows it before voiding.
SELECT b.id, b.source, b.reference_id, b.amount, b.remaining, b.granted_at, b.expires_at,
       b.status
  FROM credits.batches b
 WHERE credits.reference_order(b.reference_id) = credits.reference_order(%(reference_id)s)
   AND b.reference_id = %(reference_id)s
   AND b.user_id = %(user_id)s
