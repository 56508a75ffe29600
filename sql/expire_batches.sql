-- expire_batches: close every active batch due by the pass's cutoff of one chunk's users
-- (user ids after after_key up to last_key), write its remaining credits off in the ledger
-- and lower the balances, in one statement over the chunk.
-- Only active batches are touched and an active batch always holds credits, so each
-- expired batch had credits to write off, and consumed credits are never expired.
WITH expired AS (
    UPDATE credits.batches b
       SET status = 'expired', remaining = 0
      FROM (SELECT id, remaining
              FROM credits.batches
             WHERE status = 'active'
               AND expires_at <= %(cutoff)s
               AND (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
               AND user_id <= %(last_key)s
               FOR UPDATE) AS due
     WHERE b.id = due.id
    RETURNING b.id, b.user_id, due.remaining AS expired_amount
),
ledger AS (
    INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id, job_id)
    SELECT user_id, id, 'expire', -expired_amount, 'expire:' || id, %(job_id)s
      FROM expired
),
lowered AS (
    UPDATE credits.balances b
       SET balance = b.balance - e.expired_amount, updated_at = now()
      FROM (SELECT user_id, sum(expired_amount) AS expired_amount
              FROM expired
             GROUP BY user_id) AS e
     WHERE b.user_id = e.user_id
)
SELECT count(*) AS processed_batches,
       count(DISTINCT user_id) AS processed_users,
       coalesce(sum(expired_amount), 0) AS total_expired_amount
  FROM expired
