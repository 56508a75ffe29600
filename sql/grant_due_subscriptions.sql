-- grant_due_subscriptions: give every subscription of one chunk (ids after after_key up to
-- last_key) that is due by run_date (its month, and the month before from catch_up_from) its
-- batch, its grant ledger entry and its raised balance, in one statement over the chunk's
-- users. A subscription that cannot be granted (credits.due_grants' failure) is counted as
-- failed, reported by reason, recorded for the run (credits.job_run_failures), and blocks no
-- other.
-- The unique reference_id (one per subscription and month) with ON CONFLICT DO NOTHING is
-- what makes a second grant impossible, whatever retries or overlaps happen. The
-- subscriptions recorded as granted that month are skipped without a look at the batches;
-- the others try their insert, which finds a batch that exists (skipped) by itself.
-- A balance an app transaction holds is skipped (SKIP LOCKED), not waited for: held answers
-- that user's subscriptions, which the stripe tries again later (keys: only those), so one
-- open transaction delays its own user only, never the chunk.
WITH due AS (
    -- Not already_granted: its probe of the batches is what the record saves. What only a
    -- grant needs (the reference, the expiry, the checks) is worked out for the subscriptions
    -- not recorded as granted, not for the many a quiet day skips.
    SELECT subscription_id, period_start, recorded,
           CASE WHEN NOT recorded THEN user_id END AS user_id,
           CASE WHEN NOT recorded THEN grant_period END AS grant_period,
           CASE WHEN NOT recorded THEN reference_id END AS reference_id,
           CASE WHEN NOT recorded THEN monthly_credits END AS monthly_credits,
           CASE WHEN NOT recorded THEN expires_at END AS expires_at,
           CASE WHEN NOT recorded THEN failure END AS failure
      FROM credits.due_grants(%(run_date)s, %(eligible_statuses)s, %(catch_up_from)s,
                              %(after_key)s, %(last_key)s)
     WHERE %(keys)s::text[] IS NULL OR subscription_id = ANY (%(keys)s::text[])
),
present AS (
    -- The balances of the chunk's grantable users that exist (a first grant finds none).
    SELECT b.user_id
      FROM credits.balances AS b
     WHERE b.user_id = ANY (ARRAY(SELECT user_id FROM due WHERE NOT recorded AND failure IS NULL))
),
locked AS (
    -- The balances to raise, in user_id order; one an app transaction holds is skipped.
    SELECT b.user_id
      FROM credits.balances AS b
     WHERE b.user_id = ANY (ARRAY(SELECT user_id FROM present))
     ORDER BY b.user_id
       FOR UPDATE OF b SKIP LOCKED
),
held AS (
    -- The grantable rows of users whose balance exists but was skipped.
    SELECT subscription_id
      FROM due
     WHERE NOT recorded AND failure IS NULL
       AND user_id = ANY (ARRAY(SELECT user_id FROM present EXCEPT SELECT user_id FROM locked))
),
granted AS (
    INSERT INTO credits.batches
           (user_id, source, reference_id, grant_period, amount, remaining, expires_at)
    SELECT user_id, 'subscription', reference_id, grant_period,
           monthly_credits, monthly_credits, expires_at
      FROM due
     WHERE NOT recorded AND failure IS NULL
       AND subscription_id NOT IN (SELECT subscription_id FROM held)
     -- In subscription order: batch ids follow it, and two statements racing outside the
     -- job's lock meet on the reference index in the same order.
     ORDER BY subscription_id, grant_period
    ON CONFLICT ((credits.reference_order(reference_id)), reference_id) DO NOTHING
    RETURNING id, user_id, amount, reference_id
),
raised AS (
    -- Balances are written in user_id order, as in every job, so two jobs cannot deadlock.
    INSERT INTO credits.balances AS b (user_id, balance)
    SELECT user_id, sum(amount)
      FROM granted
     GROUP BY user_id
     ORDER BY user_id
    ON CONFLICT (user_id)
    DO UPDATE SET balance = b.balance + excluded.balance, updated_at = now()
    RETURNING b.user_id, b.balance
),
ledger AS (
    -- balance_after: the user's new balance less what the user's later entries here add.
    -- The new balance reaches each batch by a window over both lists, not by a join: the
    -- planner cannot size them, and a nested loop it chose over 25,000 x 25,000 rows took
    -- a minute a chunk (docs/PERFORMANCE.md).
    INSERT INTO credits.transactions
           (user_id, batch_id, type, amount, reference_id, job_id, balance_after)
    SELECT user_id, id, 'grant', amount, reference_id, %(job_id)s, balance_after
      FROM (SELECT user_id, id, amount, reference_id,
                   max(balance) OVER by_user
                   - coalesce(sum(amount) OVER (by_user ORDER BY id DESC
                                                ROWS BETWEEN UNBOUNDED PRECEDING
                                                         AND 1 PRECEDING), 0) AS balance_after
              FROM (SELECT user_id, id, amount, reference_id, NULL::bigint AS balance
                      FROM granted
                    UNION ALL
                    SELECT user_id, NULL, NULL, NULL, balance
                      FROM raised) AS entries
            WINDOW by_user AS (PARTITION BY user_id)) AS entries
     WHERE id IS NOT NULL
     ORDER BY id
),
recorded AS (
    -- Every grantable one has its batch now, inserted or found: its latest month is recorded.
    INSERT INTO credits.subscription_grants AS r (subscription_id, period_start)
    SELECT subscription_id, max(period_start)
      FROM due
     WHERE NOT recorded AND failure IS NULL
       AND subscription_id NOT IN (SELECT subscription_id FROM held)
     GROUP BY subscription_id
    ON CONFLICT (subscription_id)
    DO UPDATE SET period_start = excluded.period_start
     WHERE r.period_start < excluded.period_start
),
failed AS (
    -- A subscription granted before its plan went missing is skipped, not failed.
    SELECT subscription_id, grant_period, user_id, failure AS reason
      FROM due
     WHERE failure IS NOT NULL
       AND NOT recorded
       -- A probe each (a scalar subquery, never a join the planner may hash).
       AND (SELECT b.id FROM credits.batches b
             WHERE credits.reference_order(b.reference_id) = credits.reference_order(due.reference_id)
               AND b.reference_id = due.reference_id) IS NULL
),
failures AS (
    SELECT reason, count(*) AS subscriptions, left(min(subscription_id), 100) AS example
      FROM failed
     GROUP BY reason
),
noted AS (
    -- Each failed subscription for the run's page, up to the run's first failures_kept.
    INSERT INTO credits.job_run_failures (run_id, subscription_id, grant_period, user_id, reason)
    SELECT %(job_id)s, left(subscription_id, credits.max_text_length()), grant_period,
           left(user_id, credits.max_text_length()), reason
      FROM failed
     ORDER BY subscription_id, grant_period
     LIMIT greatest(0, %(failures_kept)s - (SELECT count(*) FROM credits.job_run_failures f
                                              WHERE f.run_id = %(job_id)s))
    ON CONFLICT DO NOTHING
),
counts AS (
    -- A held subscription is counted when it is granted, not while it waits.
    SELECT count(*) - (SELECT count(*) FROM held) AS processed,
           (SELECT count(*) FROM granted) AS successful,
           (SELECT coalesce(sum(subscriptions), 0) FROM failures)::bigint AS failed
      FROM due
)
SELECT processed,
       successful,
       processed - successful - failed AS skipped,
       failed,
       (SELECT coalesce(jsonb_agg(to_jsonb(f) ORDER BY f.reason), '[]')
          FROM failures f) AS failures,
       ARRAY(SELECT DISTINCT subscription_id FROM held ORDER BY 1) AS held
  FROM counts
