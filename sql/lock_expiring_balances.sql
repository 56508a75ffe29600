-- lock_expiring_balances: lock the balance of every user of the chunk who has a batch to
-- expire, in user_id order, before expire_batches touches their batches. Consumers lock a user's
-- balance before that user's batches too, so expiry and spending cannot deadlock.
SELECT count(*) AS users
  FROM (SELECT 1
          FROM credits.balances
         WHERE user_id IN (SELECT user_id
                             FROM credits.batches
                            WHERE status = 'active'
                              AND expires_at <= %(cutoff)s
                              AND (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
                              AND user_id <= %(last_key)s)
         ORDER BY user_id
           FOR UPDATE) AS locked
