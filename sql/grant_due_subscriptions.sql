-- grant_due_subscriptions: give every subscription of one chunk (ids after after_key up to
-- last_key) that is due for the month of run_date its batch, its grant ledger entry and its
-- raised balance, in one statement over the chunk's users.
-- The unique reference_id (one per subscription and month) with ON CONFLICT DO NOTHING is
-- what makes a second grant impossible, whatever retries or overlaps happen.
WITH due AS (
    SELECT *
      FROM credits.due_grants(%(run_date)s, %(eligible_statuses)s)
     WHERE (%(after_key)s::text IS NULL OR subscription_id > %(after_key)s)
       AND subscription_id <= %(last_key)s
),
granted AS (
    INSERT INTO credits.batches
           (user_id, source, reference_id, grant_period, amount, remaining, expires_at)
    SELECT user_id, 'subscription', reference_id, grant_period,
           monthly_credits, monthly_credits, expires_at
      FROM due
     WHERE NOT already_granted AND monthly_credits IS NOT NULL
    ON CONFLICT ON CONSTRAINT batches_reference_id_key DO NOTHING
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
    INSERT INTO credits.transactions
           (user_id, batch_id, type, amount, reference_id, job_id, balance_after)
    SELECT g.user_id, g.id, 'grant', g.amount, g.reference_id, %(job_id)s,
           r.balance - coalesce(sum(g.amount) OVER (PARTITION BY g.user_id ORDER BY g.id DESC
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
      FROM granted g
      JOIN raised r ON r.user_id = g.user_id
     ORDER BY g.id
),
missing_plans AS (
    SELECT plan_id, count(*) AS subscriptions, min(subscription_id) AS example
      FROM due
     WHERE NOT already_granted AND monthly_credits IS NULL
     GROUP BY plan_id
),
counts AS (
    SELECT count(*) AS processed,
           (SELECT count(*) FROM granted) AS successful,
           (SELECT coalesce(sum(subscriptions), 0) FROM missing_plans)::bigint AS failed
      FROM due
)
SELECT processed,
       successful,
       processed - successful - failed AS skipped,
       failed,
       (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.plan_id), '[]') FROM missing_plans m)
           AS missing_plans
  FROM counts
