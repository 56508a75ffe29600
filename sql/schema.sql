-- schema: the credits schema, its tables and the grant rules that run inside the database.
-- Safe to apply again (IF NOT EXISTS, CREATE OR REPLACE) and safe when several workers start
-- at once: the advisory lock below makes concurrent appliers take turns. Applying it to an
-- up-to-date database takes no lock a running job holds against it: indexes are created in
-- DO blocks only when missing (CREATE INDEX IF NOT EXISTS locks its table before it looks).

SELECT pg_advisory_xact_lock(hashtextextended('credits.schema', 0));

CREATE SCHEMA IF NOT EXISTS credits;

-- Input, written by the host app: what each plan grants every month.
-- validity_days NULL means the plan's credits never expire.
CREATE TABLE IF NOT EXISTS credits.plans (
    plan_id         text PRIMARY KEY,
    monthly_credits integer NOT NULL CHECK (monthly_credits > 0),
    validity_days   integer NULL CHECK (validity_days > 0)
);

-- Input, written by the host app (or replaced by a view with the same columns).
-- No foreign key to plans: a subscription on a missing plan is reported, not rejected.
CREATE TABLE IF NOT EXISTS credits.subscriptions (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    plan_id    text NOT NULL,
    status     text NOT NULL,
    started_at timestamptz NOT NULL,
    ends_at    timestamptz NULL
);

-- A batch is one grant of credits; spending draws it down, expiry closes it.
-- reference_id is the idempotency key: one batch per subscription and grant period.
CREATE TABLE IF NOT EXISTS credits.batches (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL,
    source       text NOT NULL,
    reference_id text NOT NULL CONSTRAINT batches_reference_id_key UNIQUE,
    grant_period text NULL,
    amount       integer NOT NULL CHECK (amount > 0),
    remaining    integer NOT NULL CHECK (remaining BETWEEN 0 AND amount),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NULL,
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'consumed', 'expired')),
    -- An active batch still holds credits; a consumed or expired one holds none.
    CONSTRAINT batches_active_iff_remaining CHECK ((status = 'active') = (remaining > 0))
);

-- Consumers and the expire job only look at a user's active batches, soonest-expiring first.
DO $$ BEGIN
    IF to_regclass('credits.batches_active_user_id_idx') IS NULL THEN
        CREATE INDEX batches_active_user_id_idx
            ON credits.batches (user_id, expires_at) WHERE status = 'active';
    END IF;
END $$;

-- The ledger: one row per movement of credits in or out of a batch.
CREATE TABLE IF NOT EXISTS credits.transactions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL,
    -- No foreign key to batches: every ledger row is written by the statement that writes or
    -- locks its batch, and the per-row check cost as much as the ledger insert itself
    -- (docs/PERFORMANCE.md). Batches are never deleted; verify checks the sums.
    batch_id     bigint NOT NULL,
    type         text NOT NULL CHECK (type IN ('grant', 'consume', 'expire')),
    amount       integer NOT NULL,
    reference_id text NOT NULL,
    job_id       uuid NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Grants add credits; consumption and expiry take them away.
    CONSTRAINT transactions_amount_sign CHECK ((type = 'grant') = (amount > 0) AND amount <> 0)
);

-- A batch is granted once and expired once.
DO $$ BEGIN
    IF to_regclass('credits.transactions_grant_expire_once_key') IS NULL THEN
        CREATE UNIQUE INDEX transactions_grant_expire_once_key
            ON credits.transactions (batch_id, type) WHERE type <> 'consume';
    END IF;
END $$;
-- A consumer's reference_id is its idempotency key, per user.
DO $$ BEGIN
    IF to_regclass('credits.transactions_consume_reference_key') IS NULL THEN
        CREATE UNIQUE INDEX transactions_consume_reference_key
            ON credits.transactions (user_id, reference_id, batch_id) WHERE type = 'consume';
    END IF;
END $$;

-- Room left in each page (fillfactor) lets a balance change be a HOT update: a new row
-- version on the same page and no new index entry, about half the cost (docs/PERFORMANCE.md).
CREATE TABLE IF NOT EXISTS credits.balances (
    user_id    text PRIMARY KEY,
    balance    bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- Each subscription's last granted month (the first day of the latest month it has a batch
-- for), written by the statement that grants the batch. Only a shortcut: a run skips the
-- subscriptions recorded as granted this month without probing batches_reference_id_key
-- for each; the unique reference_id stays what makes a second grant impossible. Room in each
-- page lets the monthly change be a HOT update.
CREATE TABLE IF NOT EXISTS credits.subscription_grants (
    subscription_id text PRIMARY KEY,
    period_start    date NOT NULL
) WITH (fillfactor = 70);

-- One row per run of a job: what it did, or why it failed.
CREATE TABLE IF NOT EXISTS credits.job_runs (
    id          uuid PRIMARY KEY,
    job         text NOT NULL CHECK (job IN ('grant', 'expire')),
    -- partial: the run's time budget ran out before its pass was done; the next call goes on.
    -- abandoned: the process running it died (found by the next run of the job).
    status      text NOT NULL CONSTRAINT job_runs_status_check
                CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'abandoned')),
    run_date    date NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz NULL,
    results     jsonb NULL,
    error       text NULL
);

DO $$ BEGIN
    IF to_regclass('credits.job_runs_job_started_at_idx') IS NULL THEN
        CREATE INDEX job_runs_job_started_at_idx
            ON credits.job_runs (job, started_at);
    END IF;
END $$;

-- Where each job's pass over its keys stands. A pass works through subscriptions (grant) or
-- users (expire) in key order, one chunk per transaction; its keys are split into stripes
-- (key ranges) worked side by side, one row each. A stripe's row moves on in the same
-- transaction as each of its chunks, so a run out of time stops between chunks and the next
-- call carries on after after_key, and totals add up the stripe's chunks exactly.
CREATE TABLE IF NOT EXISTS credits.job_progress (
    job        text NOT NULL CHECK (job IN ('grant', 'expire')),
    run_date   date NOT NULL,
    stripe     integer NOT NULL,
    cutoff     timestamptz NOT NULL,  -- expire: the pass expires batches due by this time
    -- grant: the first due day of the month before run_date's that the pass covers (the day
    -- after the last completed pass, within the catch-up window); NULL: run_date's month only
    catch_up_from date NULL,
    after_key  text NULL,             -- the last key done, or the stripe's lower bound
    upper_key  text NULL,             -- the stripe's last key; NULL: to the end
    totals     jsonb NOT NULL,
    complete   boolean NOT NULL DEFAULT false,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, run_date, stripe)
);

-- Databases made by earlier releases: a ledger foreign key, an index no statement uses any
-- more, full balance pages, fewer run statuses, and passes without a catch-up. Each change is made only when needed, so
-- applying the schema to an up-to-date database takes no lock that could stop a running job.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conname = 'transactions_batch_id_fkey'
                  AND conrelid = 'credits.transactions'::regclass) THEN
        ALTER TABLE credits.transactions DROP CONSTRAINT transactions_batch_id_fkey;
    END IF;
    IF to_regclass('credits.batches_active_expires_at_idx') IS NOT NULL THEN
        DROP INDEX credits.batches_active_expires_at_idx;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class
                    WHERE oid = 'credits.balances'::regclass
                      AND 'fillfactor=70' = ANY (coalesce(reloptions, '{}'))) THEN
        ALTER TABLE credits.balances SET (fillfactor = 70);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'job_runs_status_check'
                      AND pg_get_constraintdef(oid) LIKE '%abandoned%') THEN
        ALTER TABLE credits.job_runs DROP CONSTRAINT IF EXISTS job_runs_status_check;
        ALTER TABLE credits.job_runs ADD CONSTRAINT job_runs_status_check
            CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'abandoned'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = 'credits.job_progress'::regclass
                      AND attname = 'catch_up_from' AND NOT attisdropped) THEN
        ALTER TABLE credits.job_progress ADD COLUMN catch_up_from date NULL;
    END IF;
END
$$;

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

-- The grant rules of earlier releases, by their old signatures.
DROP FUNCTION IF EXISTS credits.due_grants(date, text[]);
DROP FUNCTION IF EXISTS credits.due_grants(date, text[], date);

-- Every subscription due a grant by run_date, with what it would be granted, in the month of
-- run_date and, for a pass that catches up after the last completed one, in the month before.
-- Due in a month: an eligible status, started on or before its due day, the due day has come
-- by run_date (and, in the month before run_date's, is on or after catch_up_from: NULL means
-- run_date's month only), and not ended at or before the due day (00:00 UTC).
-- recorded is true when credits.subscription_grants says the month was granted (false says
-- nothing); already_granted is true when its batch exists. failure says why a due
-- subscription cannot be granted (NULL: it can): an id is missing or too long for the
-- indexes (1,000 bytes at most: an index entry holds about 2,700, and the reference adds the
-- period to the id), its plan is missing, or its expiry is past the last day a timestamptz
-- holds.
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
               OR EXISTS (SELECT 1 FROM credits.batches b WHERE b.reference_id = ref.reference_id),
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
     CROSS JOIN LATERAL (SELECT 'subscription:' || s.id || ':' || period.grant_period
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
                WHEN p.validity_days > date '294276-12-31' - due.due_day
                    THEN 'plan ' || quote_literal(left(p.plan_id, 100)) || ' has validity_days '
                         || p.validity_days || ', which puts the expiry out of range'
                END AS failure) fault
     WHERE s.id IS NOT NULL
       AND s.status = ANY (eligible_statuses)
       AND (s.started_at AT TIME ZONE 'UTC')::date <= due.due_day
       AND due.due_day <= run_date
       AND (period.period_start = own.own_start OR due.due_day >= catch_up_from)
       AND (s.ends_at IS NULL OR s.ends_at > due.due_day::timestamp AT TIME ZONE 'UTC')
$$;

