-- The jobs' functions: when a subscription is due, its grant's reference, and what a grant
-- pass would grant (read by sql/grant_due_subscriptions.sql and sql/count_due_subscriptions.sql).

-- The due day of a subscription in the month starting at period_start: the UTC day of month
-- it started on, clamped to the month's last day (started on the 31st: due 30 April).
CREATE OR REPLACE FUNCTION credits.due_day(started_at timestamptz, period_start date)
RETURNS date
LANGUAGE sql IMMUTABLE
AS $$
    SELECT least(
        period_start + (extract(day FROM started_at AT TIME ZONE 'UTC')::integer - 1),
        (period_start + interval '1 month' - interval '1 day')::date
    )
$$;

-- The reference of a subscription's grant for a month: the batch's idempotency key, written
-- by the grant (credits.due_grants) and read by the account. A pure formula like due_day, so
-- every role that runs the grant may call it (it is not among the functions revoked in
-- 60_account_and_calls.sql).
CREATE OR REPLACE FUNCTION credits.subscription_reference(subscription_id text, period_start date)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT 'subscription:' || subscription_id || ':' || to_char(period_start::timestamp, 'YYYY-MM')
$$;

-- The source of the batch a grant entry of the ledger made, when the entry itself tells: a grant
-- run's entries (they carry its job_id) are subscriptions'; NULL for any other grant, whose
-- source is its batch's. The ledger's summary and the events read it, so that neither probes
-- the batch of each of a run's millions of entries (two thirds of folding them, at 10,000,000).
CREATE OR REPLACE FUNCTION credits.run_grant_source(job_id uuid)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN job_id IS NOT NULL THEN 'subscription' END
$$;

-- Every subscription due a grant by run_date, with what it would be granted, in the month of
-- run_date and, for a pass that catches up after the last completed one, in the month before.
-- Due in a month: an eligible status, started on or before its due day, the due day has come
-- by run_date (and, in the month before run_date's, is on or after catch_up_from: NULL means
-- run_date's month only), and not ended at or before the due day (00:00 UTC).
-- recorded is true when credits.subscription_grants says the month was granted (false says
-- nothing); already_granted is true when its batch exists. failure says why a due
-- subscription cannot be granted (NULL: it can): an id is missing or too long for the
-- indexes (1,000 bytes at most: an index entry holds about 2,700, and the reference adds the
-- period to the id), its plan is missing, or its plan's validity_days is above credits.max_validity_days() (the
-- most the plans file allows; a plan written straight into the table may hold more, and an
-- expiry past year 9999 is one no client can read).
-- Only subscriptions with ids after after_key up to last_key are looked at (NULL: no bound),
-- and only their records, so the join of the two is a chunk's.
CREATE OR REPLACE FUNCTION credits.due_grants(
    run_date date, eligible_statuses text[], catch_up_from date, after_key text, last_key text
)
RETURNS TABLE (
    subscription_id text,
    user_id         text,
    plan_id         text,
    grant_period    text,
    reference_id    text,
    monthly_credits integer,
    period_start    date,
    expires_at      timestamptz,
    recorded        boolean,
    already_granted boolean,
    failure         text
)
LANGUAGE sql STABLE
AS $$
    SELECT s.id,
           s.user_id,
           s.plan_id,
           period.grant_period,
           ref.reference_id,
           p.monthly_credits,
           period.period_start,
           CASE WHEN fault.failure IS NULL
                THEN (due.due_day + p.validity_days)::timestamp AT TIME ZONE 'UTC' END,
           recorded.recorded,
           recorded.recorded
               OR EXISTS (SELECT 1 FROM credits.batches b
                           WHERE credits.reference_order(b.reference_id)
                                 = credits.reference_order(ref.reference_id)
                             AND b.reference_id = ref.reference_id),
           fault.failure
      -- The chunk's subscriptions and their records, matched by one hash or merge of the two
      -- ranges (a full join has no per-row probe plan), whatever the statistics say.
      FROM (SELECT s.*, r.period_start AS recorded_start
              FROM (SELECT *
                      FROM credits.subscriptions
                     WHERE (after_key IS NULL OR id > after_key)
                       AND (last_key IS NULL OR id <= last_key)) s
              FULL JOIN (SELECT *
                           FROM credits.subscription_grants
                          WHERE (after_key IS NULL OR subscription_id > after_key)
                            AND (last_key IS NULL OR subscription_id <= last_key)) r
                ON r.subscription_id = s.id
            OFFSET 0) s
     CROSS JOIN (SELECT date_trunc('month', run_date::timestamp)::date AS own_start) own
     -- run_date's month, and the month before it when the catch-up reaches into it
     -- (CREDITS_CATCH_UP_DAYS is at most 28, so it never reaches further).
     CROSS JOIN LATERAL (SELECT start::date AS period_start,
                                to_char(start, 'YYYY-MM') AS grant_period
                           FROM (VALUES (own.own_start::timestamp),
                                        (own.own_start - interval '1 month')) AS m (start)
                          WHERE start = own.own_start OR catch_up_from < own.own_start) period
     CROSS JOIN LATERAL (SELECT credits.due_day(s.started_at, period.period_start) AS due_day) due
     CROSS JOIN LATERAL (SELECT credits.subscription_reference(s.id, period.period_start)
                                AS reference_id) ref
      LEFT JOIN credits.plans p ON p.plan_id = s.plan_id
     CROSS JOIN LATERAL (SELECT coalesce(s.recorded_start = period.period_start, false)
                                AS recorded) recorded
     CROSS JOIN LATERAL (
         SELECT CASE
                WHEN s.user_id IS NULL THEN 'it has no user id'
                WHEN octet_length(s.id) > 1000 OR octet_length(s.user_id) > 1000
                    THEN 'its id or user id is longer than 1000 bytes'
                WHEN p.plan_id IS NULL
                    THEN 'plan ' || quote_nullable(left(s.plan_id, 100)) || ' does not exist'
                WHEN p.validity_days > credits.max_validity_days()
                    THEN 'plan ' || quote_literal(left(p.plan_id, 100)) || ' has validity_days '
                         || p.validity_days || ', above ' || credits.max_validity_days()
                END AS failure) fault
     WHERE s.id IS NOT NULL
       AND s.status = ANY (eligible_statuses)
       AND (s.started_at AT TIME ZONE 'UTC')::date <= due.due_day
       AND due.due_day <= run_date
       AND (period.period_start = own.own_start OR due.due_day >= catch_up_from)
       AND (s.ends_at IS NULL OR s.ends_at > due.due_day::timestamp AT TIME ZONE 'UTC')
$$;
