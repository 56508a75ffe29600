-- list_active_batches: one user's batches that still hold credits, in the order they are spent.
SELECT id, reference_id, amount, remaining, granted_at, expires_at
  FROM credits.batches
 WHERE user_id = %(user_id)s
   AND status = 'active'
 ORDER BY expires_at ASC NULLS LAST, id
