-- lock_expiring_balances: lock the balance of every user of the chunk (user ids after
-- after_key up to last_key) who has a batch to expire, in user_id order, and answer who they
-- are. expire_batches then touches these users only: consumers lock a user's balance before
-- that user's batches too, so expiry and spending cannot deadlock.
SELECT coalesce(array_agg(user_id), '{}') AS users
  FROM (SELECT b.user_id
          FROM credits.balances AS b
         WHERE (%(after_key)s::text IS NULL OR b.user_id > %(after_key)s)
           AND b.user_id <= %(last_key)s
           AND EXISTS (SELECT 1
                         FROM credits.batches
                        WHERE user_id = b.user_id
                          AND status = 'active'
                          AND expires_at <= %(cutoff)s)
         ORDER BY b.user_id
           FOR UPDATE) AS locked
