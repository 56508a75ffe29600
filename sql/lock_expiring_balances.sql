-- lock_expiring_balances: lock the balance of every user of the chunk (user ids after
-- after_key up to last_key; and among keys, when given: a stripe's held users tried again)
-- who has a batch to expire, in user_id order, and answer who they are. expire_batches then
-- touches these users only: consumers lock a user's balance before that user's batches too,
-- so expiry and spending cannot deadlock.
-- A balance an app transaction holds is skipped (SKIP LOCKED), not waited for: held answers
-- those users, whom the stripe tries again later, so one open transaction delays its own
-- user only, never the chunk.
-- The chunk's balances drive, one index probe each for a due batch (LATERAL ... LIMIT 1),
-- whatever the statistics say: an EXISTS may be planned as a hash of every due batch.
WITH due AS (
    SELECT b.user_id
      FROM credits.balances AS b
     CROSS JOIN LATERAL (SELECT 1
                           FROM credits.batches
                          WHERE user_id = b.user_id
                            AND status = 'active'
                            AND expires_at <= %(cutoff)s
                          LIMIT 1) AS due
     WHERE (%(after_key)s::text IS NULL OR b.user_id > %(after_key)s)
       AND (%(last_key)s::text IS NULL OR b.user_id <= %(last_key)s)
       AND (%(keys)s::text[] IS NULL OR b.user_id = ANY (%(keys)s::text[]))
),
locked AS (
    SELECT b.user_id
      FROM credits.balances AS b
     WHERE b.user_id = ANY (ARRAY(SELECT user_id FROM due))
     ORDER BY b.user_id
       FOR UPDATE OF b SKIP LOCKED
)
SELECT coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM locked), '{}') AS users,
       ARRAY(SELECT user_id FROM due EXCEPT SELECT user_id FROM locked ORDER BY 1) AS held
