-- expire_batches: close every active batch due by the pass's cutoff of the chunk's users
-- whose balances lock_expiring_balances locked, write its remaining credits off in the ledger
-- and lower the balances, in one statement over the chunk. A batch that came due for another
-- user since (a back-dated grant) waits for the next pass.
-- Only active batches are touched and an active batch always holds credits, so each
-- expired batch had credits to write off, and consumed credits are never expired.
WITH due AS (
    -- Not locked again: the users' balances are, and every spend locks its user's balance
    -- before the batches, so a spend that committed first is seen by this statement and a
    -- later one waits for this transaction. (A batch lock cost a write per batch.)
    -- The users drive, one probe of the active batches' index each (a LATERAL subquery
    -- kept apart by OFFSET 0), whatever the statistics say: with fresh ones, a filter on
    -- user_id = ANY (users) was planned as a scan of every batch for each chunk.
    SELECT b.id, b.user_id, b.remaining
      FROM unnest(%(users)s::text[]) AS u (user_id)
     CROSS JOIN LATERAL (SELECT id, user_id, remaining
                           FROM credits.batches
                          WHERE user_id = u.user_id
                            AND status = 'active'
                            AND expires_at <= %(cutoff)s
                         OFFSET 0) AS b
),
expired AS (
    -- By primary key from an array, a plan that stays right whatever the statistics say.
    UPDATE credits.batches
       SET status = 'expired', remaining = 0
     WHERE id = ANY (ARRAY(SELECT id FROM due))
),
lowered AS (
    -- By primary key from an array too: a constant list of the chunk's users was planned,
    -- with fresh statistics, as a scan of every balance.
    UPDATE credits.balances AS b
       SET balance = b.balance - e.expired_amount, updated_at = now()
      FROM (SELECT user_id, sum(remaining) AS expired_amount
              FROM due
             GROUP BY user_id) AS e
     WHERE b.user_id = e.user_id
       AND b.user_id = ANY (ARRAY(SELECT user_id FROM due))
    RETURNING b.user_id, b.balance
),
ledger AS (
    -- balance_after: the user's new balance plus what the user's later entries here take.
    -- The new balance reaches each batch by a window over both lists, not by a join the
    -- planner cannot size (as in grant_due_subscriptions).
    INSERT INTO credits.transactions
           (user_id, batch_id, type, amount, reference_id, job_id, balance_after)
    SELECT user_id, id, 'expire', -remaining, 'expire:' || id, %(job_id)s, balance_after
      FROM (SELECT user_id, id, remaining,
                   max(balance) OVER by_user
                   + coalesce(sum(remaining) OVER (by_user ORDER BY id DESC
                                                   ROWS BETWEEN UNBOUNDED PRECEDING
                                                            AND 1 PRECEDING), 0) AS balance_after
              FROM (SELECT user_id, id, remaining, NULL::bigint AS balance
                      FROM due
                    UNION ALL
                    SELECT user_id, NULL, NULL, balance
                      FROM lowered) AS entries
            WINDOW by_user AS (PARTITION BY user_id)) AS entries
     WHERE id IS NOT NULL
     ORDER BY id
)
SELECT count(*) AS processed_batches,
       count(DISTINCT user_id) AS processed_users,
       coalesce(sum(remaining), 0) AS total_expired_amount
  FROM due
