-- lock_expiring_balances: lock the balance of every user of the chunk (user ids after
-- after_key up to last_key) who has a batch to expire, in user_id order, and answer who they
-- are. expire_batches then touches these users only: consumers lock a user's balance before
-- that user's batches too, so expiry and spending cannot deadlock.
-- The chunk's balances drive, one index probe each for a due batch (LATERAL ... LIMIT 1),
-- whatever the statistics say: an EXISTS may be planned as a hash of every due batch.
SELECT coalesce(array_agg(user_id), '{}') AS users
  FROM (SELECT b.user_id
          FROM credits.balances AS b
         CROSS JOIN LATERAL (SELECT 1
                               FROM credits.batches
                              WHERE user_id = b.user_id
                                AND status = 'active'
                                AND expires_at <= %(cutoff)s
                              LIMIT 1) AS due
         WHERE (%(after_key)s::text IS NULL OR b.user_id > %(after_key)s)
           AND b.user_id <= %(last_key)s
         ORDER BY b.user_id
           FOR UPDATE OF b) AS locked
