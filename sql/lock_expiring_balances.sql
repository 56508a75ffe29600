-- lock_expiring_balances: lock the balance of every user who has a batch to expire, in
-- user_id order, before expire_batches touches their batches. Consumers lock a user's
-- balance before that user's batches too, so expiry and spending cannot deadlock.
SELECT count(*) AS users
  FROM (SELECT 1
          FROM credits.balances
         WHERE user_id IN (SELECT user_id
                             FROM credits.batches
                            WHERE status = 'active'
                              AND expires_at <= coalesce(%(at)s::timestamptz, now()))
         ORDER BY user_id
           FOR UPDATE) AS locked
