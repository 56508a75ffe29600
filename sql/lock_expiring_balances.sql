-- lock_expiring_balances: lock the balance of every user of the chunk (user ids after
-- after_key up to last_key) who has a batch to expire, in user_id order, before
-- expire_batches touches their batches. Consumers lock a user's balance before that user's
-- batches too, so expiry and spending cannot deadlock.
SELECT count(*) AS users
  FROM (SELECT 1
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
