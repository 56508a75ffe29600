-- 0001 credits_schema: takes an empty database, or one made by any earlier release's
-- sql/schema.sql, to this release's schema (sql/schema/ is the same schema, to read). Its
-- in-place rules for earlier databases run once, here, for the last time; later changes are
-- new files. Each change is made only when missing, so a database that ran the old schema.sql
-- of this release's predecessors is upgraded where it stands, and the advisory lock below
-- makes concurrent appliers (services starting, a host's migration tool) take turns.

SELECT pg_advisory_xact_lock(hashtextextended('credits.schema', 0));

CREATE SCHEMA IF NOT EXISTS credits;

-- Which migrations (sql/migrations/NNNN_name.sql) this database has had; each file records
-- itself on its last line, so any tool that runs the files leaves the same record.
CREATE TABLE IF NOT EXISTS credits.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

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
-- reference_id is the idempotency key, unique (batches_reference_key, below): one batch per
-- subscription and grant period, one per purchase or one-off grant.
CREATE TABLE IF NOT EXISTS credits.batches (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL,
    source       text NOT NULL,
    reference_id text NOT NULL,
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

-- The order of the batches' reference index: a reference's last seven characters first (a
-- subscription grant's month, YYYY-MM, credits.subscription_reference), then the whole of it.
-- Unique on the pair is unique on the reference, the first being a function of the second;
-- in this order a month's grants lie side by side, so a day's grants write to the month's
-- part of the index, not to a page per subscription across all of history (an index by the
-- reference alone, batches_reference_id_key before, made the quiet day's cost grow with
-- history: docs/PERFORMANCE.md). A lookup by reference names both columns:
--     credits.reference_order(b.reference_id) = credits.reference_order(r) AND b.reference_id = r
-- The index is built on this function: it must never change.
CREATE OR REPLACE FUNCTION credits.reference_order(reference_id text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT right(reference_id, 7)
$$;

-- Made before the index it replaces is dropped, in the same transaction, so a reference is
-- unique at every moment. On a database with history the build takes a while (30 s for 24
-- million batches on the benchmark's machine) and holds off writes to the batches meanwhile,
-- once.
DO $$ BEGIN
    IF to_regclass('credits.batches_reference_key') IS NULL THEN
        CREATE UNIQUE INDEX batches_reference_key
            ON credits.batches ((credits.reference_order(reference_id)), reference_id);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint
                WHERE conname = 'batches_reference_id_key'
                  AND conrelid = 'credits.batches'::regclass) THEN
        ALTER TABLE credits.batches DROP CONSTRAINT batches_reference_id_key;
    END IF;
END $$;

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

-- A batch is granted once, expired once and voided once (reversals may come back to it often).
DO $$ BEGIN
    IF to_regclass('credits.transactions_once_per_batch_key') IS NULL THEN
        CREATE UNIQUE INDEX transactions_once_per_batch_key
            ON credits.transactions (batch_id, type) WHERE type IN ('grant', 'expire', 'void');
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
-- subscriptions recorded as granted this month without probing batches_reference_key
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
    after_key  text NULL,             -- the last key done, or the stripe's lower bound
    upper_key  text NULL,             -- the stripe's last key; NULL: to the end
    totals     jsonb NOT NULL,
    complete   boolean NOT NULL DEFAULT false,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- grant: the first due day of the month before run_date's that the pass covers (the day
    -- after the last completed pass, within the catch-up window); NULL: run_date's month only
    catch_up_from date NULL,
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

-- The reference of a subscription's grant for a month: the batch's idempotency key, written
-- by the grant (credits.due_grants) and read by the account. A pure formula like due_day, so
-- every role that runs the grant may call it (it is not among the functions revoked below).
CREATE OR REPLACE FUNCTION credits.subscription_reference(subscription_id text, period_start date)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT 'subscription:' || subscription_id || ':' || to_char(period_start::timestamp, 'YYYY-MM')
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

-- =============================================================================================
-- The app's interface: one-off grants, packs, the sign-up bonus, spending by amount or by
-- service, reversals, voids, the account and the statement, as functions any driver calls in
-- its own transaction. docs/API.md is their reference (arguments, answers, error codes).
--
-- Rules every writing function keeps:
-- * It locks the user's balance row first, then the user's batches, as the jobs do, so it
--   cannot deadlock with a grant, an expiry or another call.
-- * It is idempotent by the caller's reference: a replay answers the first call's result.
-- * A refusal raises a documented SQLSTATE and changes nothing (the raise undoes the call).
-- * Bad arguments raise 22004 (null), 22023 (empty, zero, negative, unknown choice),
--   22003 (above range) or 22001 (too long), naming the argument.
-- * Each runs as the schema's owner (SECURITY DEFINER) with a fixed search_path and every
--   name qualified, so a caller needs the right to call it and no right on any table.
-- Functions named *_at take the clock as their first argument (tests, back-dated tools); the
-- functions apps call pass now(). Only the service role may call the *_at ones (sql/roles.sql).
-- =============================================================================================

-- The plans file's other sections (credits/plans.py loads them, all or nothing, with the plans).
CREATE TABLE IF NOT EXISTS credits.registration (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    credits       integer NOT NULL CHECK (credits > 0),
    validity_days integer NULL CHECK (validity_days BETWEEN 1 AND 36500)
);

CREATE TABLE IF NOT EXISTS credits.packages (
    package_id    text PRIMARY KEY,
    credits       integer NOT NULL CHECK (credits > 0),
    bonus         integer NOT NULL DEFAULT 0 CHECK (bonus >= 0),
    validity_days integer NULL CHECK (validity_days BETWEEN 1 AND 36500),
    -- A pack is one batch of credits + bonus: it must fit a batch's amount.
    CONSTRAINT packages_amount_fits CHECK (credits::bigint + bonus <= 2147483647)
);

CREATE TABLE IF NOT EXISTS credits.services (
    service text PRIMARY KEY,
    cost    integer NOT NULL CHECK (cost > 0)
);

CREATE TABLE IF NOT EXISTS credits.limits (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_balance bigint NULL CHECK (max_balance > 0)
);

-- Ledger entries carry the balance after them (NULL on entries written before this column
-- existed), the service a spend was for and the caller's metadata. New entry types:
-- reverse (credits of a spend given back), lapse (given back to a batch that can no longer
-- hold them: written off at once) and void (what remained of a voided grant, taken back).
-- A voided batch holds no credits. Each change is made only when missing, as above.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute
                    WHERE attrelid = 'credits.transactions'::regclass
                      AND attname = 'balance_after' AND NOT attisdropped) THEN
        ALTER TABLE credits.transactions
            ADD COLUMN balance_after bigint NULL,
            ADD COLUMN service text NULL,
            ADD COLUMN metadata jsonb NULL;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                    WHERE conname = 'transactions_type_check'
                      AND conrelid = 'credits.transactions'::regclass
                      AND pg_get_constraintdef(oid) LIKE '%lapse%') THEN
        ALTER TABLE credits.transactions
            DROP CONSTRAINT IF EXISTS transactions_type_check,
            DROP CONSTRAINT IF EXISTS transactions_amount_sign,
            ADD CONSTRAINT transactions_type_check
                CHECK (type IN ('grant', 'consume', 'expire', 'reverse', 'lapse', 'void')),
            -- Grants and reversals add credits; every other entry takes them away.
            ADD CONSTRAINT transactions_amount_sign
                CHECK ((type IN ('grant', 'reverse')) = (amount > 0) AND amount <> 0);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                    WHERE conname = 'batches_status_check'
                      AND conrelid = 'credits.batches'::regclass
                      AND pg_get_constraintdef(oid) LIKE '%voided%') THEN
        ALTER TABLE credits.batches
            DROP CONSTRAINT IF EXISTS batches_status_check,
            ADD CONSTRAINT batches_status_check
                CHECK (status IN ('active', 'consumed', 'expired', 'voided'));
    END IF;
    -- Replaced by transactions_once_per_batch_key, which lets reversals repeat on a batch.
    IF to_regclass('credits.transactions_grant_expire_once_key') IS NOT NULL THEN
        DROP INDEX credits.transactions_grant_expire_once_key;
    END IF;
    -- A spend is reversed once: one reverse (and at most one lapse) per spend and batch.
    IF to_regclass('credits.transactions_reversal_key') IS NULL THEN
        CREATE UNIQUE INDEX transactions_reversal_key
            ON credits.transactions (user_id, reference_id, batch_id, type)
            WHERE type IN ('reverse', 'lapse');
    END IF;
    -- Room in each batches page: a spend's draw (remaining only) is then a HOT update, no
    -- new index entries (docs/PERFORMANCE.md, Spending). Pages written from now on.
    IF NOT EXISTS (SELECT FROM pg_class
                    WHERE oid = 'credits.batches'::regclass
                      AND 'fillfactor=90' = ANY (coalesce(reloptions, '{}'))) THEN
        ALTER TABLE credits.batches SET (fillfactor = 90);
    END IF;
    -- The statement pages through one user's entries newest first, by entry id.
    IF to_regclass('credits.transactions_user_id_id_idx') IS NULL THEN
        CREATE INDEX transactions_user_id_id_idx ON credits.transactions (user_id, id);
    END IF;
    -- The account finds one user's subscriptions (unless the host app made them a view). Only
    -- user ids an index entry can hold: the host may write longer ones (the grant fails them).
    IF to_regclass('credits.subscriptions_user_id_idx') IS NULL
       AND (SELECT relkind FROM pg_class WHERE oid = 'credits.subscriptions'::regclass) = 'r' THEN
        CREATE INDEX subscriptions_user_id_idx ON credits.subscriptions (user_id)
            WHERE octet_length(user_id) <= 800;
    END IF;
END
$$;

-- Argument checks: each raises a clear error naming the argument, or answers the value. They
-- run inside the functions below, under their fixed search_path (no SET of their own: a SET
-- on every call costs as much as a check).
CREATE OR REPLACE FUNCTION credits.checked_text(value text, name text, max_length integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', name USING ERRCODE = '22004';
    ELSIF btrim(value) = '' THEN
        RAISE EXCEPTION '% must not be empty', name USING ERRCODE = '22023';
    ELSIF length(value) > max_length THEN
        RAISE EXCEPTION '% must be at most % characters, got %', name, max_length, length(value)
            USING ERRCODE = '22001';
    ELSIF value ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION '% must not contain control characters', name USING ERRCODE = '22023';
    END IF;
    RETURN value;
END
$$;

CREATE OR REPLACE FUNCTION credits.checked_count(value bigint, name text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', name USING ERRCODE = '22004';
    ELSIF value <= 0 THEN
        RAISE EXCEPTION '% must be a whole number above 0, got %', name, value
            USING ERRCODE = '22023';
    ELSIF value > 2147483647 THEN
        RAISE EXCEPTION '% must be at most 2147483647, got %', name, value
            USING ERRCODE = '22003';
    END IF;
    RETURN value;
END
$$;

-- A grant's reference: the app's own, never one of the names the service writes itself.
CREATE OR REPLACE FUNCTION credits.checked_grant_reference(value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF credits.checked_text(value, 'reference_id', 200) ~ '^(subscription|registration|expire):' THEN
        RAISE EXCEPTION 'reference_id must not start with subscription:, registration: or expire:'
            USING ERRCODE = '22023';
    END IF;
    RETURN value;
END
$$;

-- When credits granted at `at` expire: validity_days on, at expires_at, or never (both NULL).
CREATE OR REPLACE FUNCTION credits.checked_expiry(
    at timestamptz, validity_days bigint, expires_at timestamptz
)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF validity_days IS NOT NULL AND expires_at IS NOT NULL THEN
        RAISE EXCEPTION 'give validity_days or expires_at, not both' USING ERRCODE = '22023';
    ELSIF validity_days IS NOT NULL THEN
        IF validity_days <= 0 THEN
            RAISE EXCEPTION 'validity_days must be a whole number above 0, got %', validity_days
                USING ERRCODE = '22023';
        ELSIF validity_days > 36500 THEN
            RAISE EXCEPTION 'validity_days must be at most 36500, got %', validity_days
                USING ERRCODE = '22003';
        END IF;
        RETURN at + make_interval(days => validity_days::integer);
    ELSIF expires_at IS NOT NULL THEN
        IF expires_at <= at THEN
            RAISE EXCEPTION 'expires_at must be in the future, got %', expires_at
                USING ERRCODE = '22023';
        ELSIF expires_at > at + interval '36500 days' THEN
            RAISE EXCEPTION 'expires_at must be within 36500 days, got %', expires_at
                USING ERRCODE = '22003';
        END IF;
    END IF;
    RETURN expires_at;
END
$$;

-- metadata: a JSON object (or NULL) of at most 4,000 characters.
CREATE OR REPLACE FUNCTION credits.checked_metadata(value jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NOT NULL AND jsonb_typeof(value) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object, got %', jsonb_typeof(value)
            USING ERRCODE = '22023';
    ELSIF length(value::text) > 4000 THEN
        RAISE EXCEPTION 'metadata must be at most 4000 characters of JSON, got %',
            length(value::text) USING ERRCODE = '22001';
    END IF;
    RETURN value;
END
$$;

-- Give one user a batch under a reference, once: the balance row is locked first (created at
-- 0 on a user's first grant). A replay answers the batch already granted; the same reference
-- for another user, amount or source is refused (CR002), as is going above max_balance when
-- capped (CR003). Arguments are checked by the callers.
CREATE OR REPLACE FUNCTION credits.grant_batch(
    user_id text, amount integer, source text, reference_id text, expires_at timestamptz,
    metadata jsonb, capped boolean, strict_replay boolean
)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_balance bigint;
    v_cap bigint;
    v_batch credits.batches;
BEGIN
    INSERT INTO credits.balances AS b (user_id, balance) VALUES (grant_batch.user_id, 0)
    ON CONFLICT ON CONSTRAINT balances_pkey DO NOTHING;
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = grant_batch.user_id FOR UPDATE;

    SELECT * INTO v_batch
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(grant_batch.reference_id)
       AND b.reference_id = grant_batch.reference_id;
    IF FOUND THEN
        IF v_batch.user_id <> grant_batch.user_id OR v_batch.source <> grant_batch.source
           OR (strict_replay AND v_batch.amount <> grant_batch.amount) THEN
            RAISE EXCEPTION 'reference_id % was already used for a grant of % % credits to user %',
                quote_literal(grant_batch.reference_id), v_batch.amount, v_batch.source,
                quote_literal(v_batch.user_id)
                USING ERRCODE = 'CR002';
        END IF;
        RETURN credits.grant_answer(v_batch, v_balance, true);
    END IF;

    IF capped THEN
        SELECT l.max_balance INTO v_cap FROM credits.limits l;
        IF v_balance + amount > v_cap THEN
            RAISE EXCEPTION 'user % holds % credits; % more would pass the cap of %',
                quote_literal(grant_batch.user_id), v_balance, amount, v_cap
                USING ERRCODE = 'CR003';
        END IF;
    END IF;

    BEGIN
        INSERT INTO credits.batches AS b (user_id, source, reference_id, amount, remaining, expires_at)
        VALUES (grant_batch.user_id, grant_batch.source, grant_batch.reference_id,
                grant_batch.amount, grant_batch.amount, grant_batch.expires_at)
        RETURNING * INTO v_batch;
    EXCEPTION WHEN unique_violation THEN
        -- Another user's grant took this reference since the look above.
        RAISE EXCEPTION 'reference_id % was already used for a grant to another user',
            quote_literal(grant_batch.reference_id) USING ERRCODE = 'CR002';
    END;
    UPDATE credits.balances b SET balance = b.balance + grant_batch.amount, updated_at = now()
     WHERE b.user_id = grant_batch.user_id
    RETURNING b.balance INTO v_balance;
    INSERT INTO credits.transactions
           (user_id, batch_id, type, amount, reference_id, balance_after, metadata)
    VALUES (grant_batch.user_id, v_batch.id, 'grant', grant_batch.amount,
            grant_batch.reference_id, v_balance, grant_batch.metadata);
    RETURN credits.grant_answer(v_batch, v_balance, false);
END
$$;

CREATE OR REPLACE FUNCTION credits.grant_answer(batch credits.batches, balance bigint, replayed boolean)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', batch.user_id, 'reference_id', batch.reference_id, 'batch_id', batch.id,
        'source', batch.source, 'amount', batch.amount, 'expires_at', batch.expires_at,
        'balance', balance, 'replayed', replayed)
$$;

-- Grant a one-off batch: amount credits from a source, under the app's reference.
CREATE OR REPLACE FUNCTION credits.grant_credits_at(
    at timestamptz, user_id text, amount bigint, source text, reference_id text,
    validity_days bigint DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    metadata jsonb DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF source IS NULL OR source NOT IN ('purchase', 'bonus', 'registration', 'promotion', 'adjustment') THEN
        RAISE EXCEPTION 'source must be one of purchase, bonus, registration, promotion, adjustment, got %',
            coalesce(quote_literal(source), 'null') USING ERRCODE = '22023';
    END IF;
    RETURN credits.grant_batch(
        credits.checked_text(user_id, 'user_id', 200),
        credits.checked_count(amount, 'amount'),
        source,
        credits.checked_grant_reference(reference_id),
        credits.checked_expiry(at, validity_days, expires_at),
        credits.checked_metadata(metadata),
        capped => false, strict_replay => true);
END
$$;

-- Grant a credit pack bought under a purchase reference: one batch of its credits and bonus,
-- refused (CR003) when it would take the balance above [limits] max_balance.
CREATE OR REPLACE FUNCTION credits.buy_package_at(
    at timestamptz, user_id text, package_id text, reference_id text
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_package credits.packages;
    v_answer jsonb;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200);
    PERFORM credits.checked_grant_reference(reference_id);
    v_package := credits.known_package(package_id);
    v_answer := credits.grant_batch(
        user_id, v_package.credits + v_package.bonus, 'purchase', reference_id,
        credits.checked_expiry(at, v_package.validity_days, NULL),
        jsonb_build_object('package_id', v_package.package_id, 'credits', v_package.credits,
                           'bonus', v_package.bonus),
        capped => true, strict_replay => true);
    RETURN v_answer || jsonb_build_object('package_id', v_package.package_id,
                                          'credits', v_package.credits, 'bonus', v_package.bonus);
END
$$;

CREATE OR REPLACE FUNCTION credits.known_package(package_id text)
RETURNS credits.packages
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_package credits.packages;
BEGIN
    SELECT * INTO v_package FROM credits.packages p
     WHERE p.package_id = credits.checked_text(known_package.package_id, 'package_id', 200);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown package %', quote_literal(package_id) USING ERRCODE = 'CR004';
    END IF;
    RETURN v_package;
END
$$;

-- Ask before taking payment: would buying this pack be refused for being over the cap?
-- Reads only; the answer can change before the purchase, which buy_package checks again.
CREATE OR REPLACE FUNCTION credits.can_buy_package(user_id text, package_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_package credits.packages;
    v_balance bigint;
    v_cap bigint;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200);
    v_package := credits.known_package(package_id);
    SELECT coalesce((SELECT b.balance FROM credits.balances b
                      WHERE b.user_id = can_buy_package.user_id), 0) INTO v_balance;
    SELECT l.max_balance INTO v_cap FROM credits.limits l;
    RETURN jsonb_build_object(
        'allowed', v_cap IS NULL OR v_balance + v_package.credits + v_package.bonus <= v_cap,
        'user_id', user_id, 'package_id', v_package.package_id,
        'amount', v_package.credits + v_package.bonus, 'balance', v_balance,
        'max_balance', v_cap);
END
$$;

-- Grant the sign-up bonus of [registration], once per user whatever is replayed.
CREATE OR REPLACE FUNCTION credits.grant_registration_bonus_at(at timestamptz, user_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_registration credits.registration;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200);
    SELECT * INTO v_registration FROM credits.registration;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sign-up bonus is configured ([registration] in the plans file)'
            USING ERRCODE = 'CR007';
    END IF;
    RETURN credits.grant_batch(
        user_id, v_registration.credits, 'registration', 'registration:' || user_id,
        credits.checked_expiry(at, v_registration.validity_days, NULL), NULL,
        capped => false, strict_replay => false);
END
$$;

-- Spend credits of one user at `at`: amount, or a service's cost times quantity. Soonest-
-- expiring batch first, never-expiring last, never from a batch past its date; all or nothing
-- (CR001 when short); once per reference (a replay answers the first spend; the same
-- reference for another amount is refused, CR002).
CREATE OR REPLACE FUNCTION credits.spend_at(
    at timestamptz, user_id text, amount bigint, service text, quantity bigint,
    reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- One plan serves every user: planning the spend statement anew for each call (a custom
-- plan) cost more than running it (docs/PERFORMANCE.md, Spending).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_amount bigint := amount;
    v_cost integer;
    v_balance bigint;
    v_earlier bigint;
    v_available bigint := 0;
    v_spent_balance bigint;
    v_draws jsonb;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200),
            credits.checked_text(reference_id, 'reference_id', 200),
            credits.checked_metadata(metadata),
            credits.checked_count(amount, 'amount')
      WHERE service IS NULL;
    IF service IS NOT NULL THEN
        SELECT s.cost INTO v_cost FROM credits.services s
         WHERE s.service = credits.checked_text(spend_at.service, 'service', 200);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown service %', quote_literal(service) USING ERRCODE = 'CR005';
        END IF;
        PERFORM credits.checked_text(user_id, 'user_id', 200),
                credits.checked_text(reference_id, 'reference_id', 200),
                credits.checked_metadata(metadata),
                credits.checked_count(v_cost * credits.checked_count(quantity, 'quantity')::bigint,
                                      'amount');
        v_amount := v_cost * quantity;
    END IF;

    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = spend_at.user_id FOR UPDATE;
    -- No balance row: the user held no credits when this call began, and the call holds no
    -- lock on them. It spends nothing (CR001 below): a batch of the user's first grant,
    -- committed meanwhile, could otherwise be drawn here and by a spend holding the new
    -- row's lock at once (tests/test_first_credits_race.py).
    IF FOUND THEN
        -- A statement of its own, so it sees a spend with this reference that committed while
        -- this call waited for the lock.
        SELECT -sum(t.amount) INTO v_earlier
          FROM credits.transactions t
         WHERE t.user_id = spend_at.user_id AND t.type = 'consume'
           AND t.reference_id = spend_at.reference_id;
        IF v_earlier IS NOT NULL THEN
            IF v_earlier <> v_amount THEN
                RAISE EXCEPTION 'reference_id % already spent % credits of user %, not %',
                    quote_literal(reference_id), v_earlier, quote_literal(user_id), v_amount
                    USING ERRCODE = 'CR002';
            END IF;
            RETURN credits.spend_replay(user_id, reference_id, v_amount, service, v_balance);
        END IF;

        -- One statement: draw the batches, write the ledger, lower the balance; or, when the
        -- spendable credits are short, nothing (available says how many there were).
        WITH spendable AS (
            SELECT b.id, b.remaining, b.expires_at,
                   sum(b.remaining) OVER (ORDER BY b.expires_at ASC NULLS LAST, b.id)
                       - b.remaining AS drawn_before,
                   sum(b.remaining) OVER () AS available
              FROM credits.batches b
             WHERE b.user_id = spend_at.user_id AND b.status = 'active'
               AND (b.expires_at IS NULL OR b.expires_at > at)
        ),
        draws AS (
            SELECT s.id, s.expires_at, s.drawn_before,
                   least(s.remaining, v_amount - s.drawn_before) AS drawn
              FROM spendable s
             WHERE s.drawn_before < v_amount AND s.available >= v_amount
        ),
        drawn AS (
            UPDATE credits.batches b
               SET remaining = b.remaining - d.drawn,
                   status = CASE WHEN b.remaining = d.drawn THEN 'consumed' ELSE 'active' END
              FROM draws d
             WHERE b.id = d.id
            RETURNING b.id, d.drawn, d.drawn_before, d.expires_at
        ),
        ledger AS (
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after, service, metadata)
            SELECT spend_at.user_id, d.id, 'consume', -d.drawn, spend_at.reference_id,
                   v_balance - d.drawn_before - d.drawn, spend_at.service, spend_at.metadata
              FROM drawn d
             ORDER BY d.drawn_before
        ),
        lowered AS (
            UPDATE credits.balances b SET balance = b.balance - v_amount, updated_at = now()
             WHERE b.user_id = spend_at.user_id
               AND EXISTS (SELECT 1 FROM drawn)
            RETURNING b.balance
        )
        SELECT coalesce((SELECT max(s.available) FROM spendable s), 0) AS available,
               (SELECT l.balance FROM lowered l) AS balance,
               (SELECT jsonb_agg(jsonb_build_object('batch_id', d.id, 'amount', d.drawn,
                                                    'expires_at', d.expires_at)
                                 ORDER BY d.drawn_before)
                  FROM drawn d) AS draws
          INTO v_available, v_spent_balance, v_draws;
    END IF;
    IF v_spent_balance IS NULL THEN
        RAISE EXCEPTION 'user % has % spendable credits, % asked for',
            quote_literal(user_id), v_available, v_amount USING ERRCODE = 'CR001';
    END IF;
    RETURN jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'amount', v_amount,
        'service', service, 'balance', v_spent_balance, 'draws', v_draws,
        'replayed', false, 'reversed', false);
END
$$;

-- A replayed spend's answer: what it drew, and whether it was reversed since.
CREATE OR REPLACE FUNCTION credits.spend_replay(
    user_id text, reference_id text, amount bigint, service text, balance bigint
)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'amount', amount,
        'service', service, 'balance', balance,
        'draws', (SELECT jsonb_agg(jsonb_build_object('batch_id', t.batch_id, 'amount', -t.amount)
                                   ORDER BY t.id)
                    FROM credits.transactions t
                   WHERE t.user_id = spend_replay.user_id AND t.type = 'consume'
                     AND t.reference_id = spend_replay.reference_id),
        'replayed', true,
        'reversed', EXISTS (SELECT 1 FROM credits.transactions t
                             WHERE t.user_id = spend_replay.user_id AND t.type = 'reverse'
                               AND t.reference_id = spend_replay.reference_id))
$$;

-- Reverse a spend: its credits go back to the batches they came from. Credits drawn from a
-- batch that has since passed its date, expired or been voided do not come back to life:
-- each is written in the ledger as given back (reverse) and written off at once (lapse).
-- Once per spend: a replay answers the first reversal. Unknown spend: CR006.
CREATE OR REPLACE FUNCTION credits.reverse_spend_at(at timestamptz, user_id text, reference_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_balance bigint;
    v_draw record;
    v_returned bigint := 0;
    v_lapsed bigint := 0;
    v_draws jsonb := '[]';
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200);
    PERFORM credits.checked_text(reference_id, 'reference_id', 200);
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = reverse_spend_at.user_id FOR UPDATE;

    IF EXISTS (SELECT 1 FROM credits.transactions t
                WHERE t.user_id = reverse_spend_at.user_id AND t.type = 'reverse'
                  AND t.reference_id = reverse_spend_at.reference_id) THEN
        SELECT coalesce(sum(t.amount) FILTER (WHERE t.type = 'reverse'), 0),
               coalesce(-sum(t.amount) FILTER (WHERE t.type = 'lapse'), 0),
               jsonb_agg(jsonb_build_object('batch_id', t.batch_id, 'amount', t.amount,
                                            'type', t.type) ORDER BY t.id)
          INTO v_returned, v_lapsed, v_draws
          FROM credits.transactions t
         WHERE t.user_id = reverse_spend_at.user_id AND t.type IN ('reverse', 'lapse')
           AND t.reference_id = reverse_spend_at.reference_id;
        RETURN credits.reversal_answer(user_id, reference_id, v_returned - v_lapsed, v_lapsed,
                                       v_balance, v_draws, true);
    END IF;

    FOR v_draw IN
        SELECT t.batch_id, -t.amount AS amount,
               b.status IN ('active', 'consumed') AND (b.expires_at IS NULL OR b.expires_at > at)
                   AS live
          FROM credits.transactions t
          JOIN credits.batches b ON b.id = t.batch_id
         WHERE t.user_id = reverse_spend_at.user_id AND t.type = 'consume'
           AND t.reference_id = reverse_spend_at.reference_id
         ORDER BY t.batch_id
           FOR UPDATE OF b
    LOOP
        v_balance := v_balance + v_draw.amount;
        INSERT INTO credits.transactions
               (user_id, batch_id, type, amount, reference_id, balance_after)
        VALUES (reverse_spend_at.user_id, v_draw.batch_id, 'reverse', v_draw.amount,
                reverse_spend_at.reference_id, v_balance);
        v_draws := v_draws || jsonb_build_object('batch_id', v_draw.batch_id,
                                                 'amount', v_draw.amount, 'type', 'reverse');
        IF v_draw.live THEN
            UPDATE credits.batches b SET remaining = b.remaining + v_draw.amount, status = 'active'
             WHERE b.id = v_draw.batch_id;
            v_returned := v_returned + v_draw.amount;
        ELSE
            v_balance := v_balance - v_draw.amount;
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after)
            VALUES (reverse_spend_at.user_id, v_draw.batch_id, 'lapse', -v_draw.amount,
                    reverse_spend_at.reference_id, v_balance);
            v_draws := v_draws || jsonb_build_object('batch_id', v_draw.batch_id,
                                                     'amount', -v_draw.amount, 'type', 'lapse');
            v_lapsed := v_lapsed + v_draw.amount;
        END IF;
    END LOOP;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % has no spend with reference_id %',
            quote_literal(user_id), quote_literal(reference_id) USING ERRCODE = 'CR006';
    END IF;

    UPDATE credits.balances b SET balance = v_balance, updated_at = now()
     WHERE b.user_id = reverse_spend_at.user_id;
    RETURN credits.reversal_answer(user_id, reference_id, v_returned, v_lapsed, v_balance,
                                   v_draws, false);
END
$$;

CREATE OR REPLACE FUNCTION credits.reversal_answer(
    user_id text, reference_id text, returned bigint, lapsed bigint, balance bigint,
    entries jsonb, replayed boolean
)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'returned', returned,
        'lapsed', lapsed, 'balance', balance, 'entries', entries, 'replayed', replayed)
$$;

-- Void a one-off grant by the reference it was granted under (a pack: its purchase
-- reference): what remains of it is taken back, what was spent is reported, not clawed back.
-- Once: a replay answers the first void. Unknown reference: CR006; a subscription's grant: CR008.
CREATE OR REPLACE FUNCTION credits.void_grant_at(at timestamptz, reference_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user_id text;
    v_balance bigint;
    v_batch credits.batches;
    v_voided bigint := 0;
    v_expired bigint;
    v_replayed boolean;
BEGIN
    PERFORM credits.checked_text(reference_id, 'reference_id', 200);
    -- Whose grant it is, unlocked: a batch never changes user.
    SELECT b.user_id INTO v_user_id
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(void_grant_at.reference_id)
       AND b.reference_id = void_grant_at.reference_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no grant has reference_id %', quote_literal(reference_id)
            USING ERRCODE = 'CR006';
    END IF;
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = v_user_id FOR UPDATE;
    SELECT * INTO v_batch
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(void_grant_at.reference_id)
       AND b.reference_id = void_grant_at.reference_id
       FOR UPDATE;
    IF v_batch.source = 'subscription' THEN
        RAISE EXCEPTION 'reference_id % is a subscription''s grant, not a one-off grant',
            quote_literal(reference_id) USING ERRCODE = 'CR008';
    END IF;

    v_replayed := v_batch.status = 'voided';
    IF v_replayed THEN
        SELECT coalesce(-sum(t.amount), 0) INTO v_voided
          FROM credits.transactions t WHERE t.batch_id = v_batch.id AND t.type = 'void';
    ELSE
        v_voided := v_batch.remaining;
        UPDATE credits.batches b SET remaining = 0, status = 'voided' WHERE b.id = v_batch.id;
        IF v_voided > 0 THEN
            UPDATE credits.balances b SET balance = b.balance - v_voided, updated_at = now()
             WHERE b.user_id = v_user_id
            RETURNING b.balance INTO v_balance;
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after)
            VALUES (v_user_id, v_batch.id, 'void', -v_voided, v_batch.reference_id, v_balance);
        END IF;
    END IF;
    SELECT coalesce(-sum(t.amount), 0) INTO v_expired
      FROM credits.transactions t WHERE t.batch_id = v_batch.id AND t.type = 'expire';
    RETURN jsonb_build_object(
        'user_id', v_user_id, 'reference_id', v_batch.reference_id, 'batch_id', v_batch.id,
        'source', v_batch.source, 'amount', v_batch.amount, 'voided', v_voided,
        'expired', v_expired, 'spent', v_batch.amount - v_voided - v_expired,
        'balance', v_balance, 'replayed', v_replayed);
END
$$;

-- One user's account at `at`: balance, spendable now, the next batch to expire and the next
-- subscription grant (the grant job's due-day rule, credits.due_day, for this month and the
-- next two, among subscriptions in eligible_statuses). Reads one snapshot; locks nothing.
CREATE OR REPLACE FUNCTION credits.account_at(
    at timestamptz, user_id text, eligible_statuses text[] DEFAULT '{active}'
)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_today date := (at AT TIME ZONE 'UTC')::date;
    v_account jsonb;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id', 200);
    WITH mine AS (
        SELECT b.remaining, b.expires_at
          FROM credits.batches b
         WHERE b.user_id = account_at.user_id AND b.status = 'active'
    ),
    next_expiry AS (
        SELECT m.expires_at, sum(m.remaining) AS amount
          FROM mine m
         WHERE m.expires_at > at
         GROUP BY m.expires_at
         ORDER BY m.expires_at
         LIMIT 1
    ),
    due AS (
        SELECT credits.due_day(s.started_at, month.period_start) AS due_day, s.started_at,
               s.ends_at, p.monthly_credits,
               credits.subscription_reference(s.id, month.period_start) AS reference_id
          FROM credits.subscriptions s
          JOIN credits.plans p ON p.plan_id = s.plan_id
         CROSS JOIN LATERAL (
                SELECT (date_trunc('month', v_today) + make_interval(months => n))::date
                       AS period_start
                  FROM generate_series(0, 2) n) month
         WHERE s.user_id = account_at.user_id AND s.status = ANY (eligible_statuses)
           AND octet_length(s.user_id) <= 800  -- user_id is at most 200 characters
    ),
    next_grant AS (
        SELECT d.due_day, sum(d.monthly_credits) AS amount
          FROM due d
         WHERE d.due_day >= v_today
           AND (d.started_at AT TIME ZONE 'UTC')::date <= d.due_day
           AND (d.ends_at IS NULL OR d.ends_at > d.due_day::timestamp AT TIME ZONE 'UTC')
           AND NOT EXISTS (SELECT 1 FROM credits.batches b
                            WHERE credits.reference_order(b.reference_id)
                                  = credits.reference_order(d.reference_id)
                              AND b.reference_id = d.reference_id)
         GROUP BY d.due_day
         ORDER BY d.due_day
         LIMIT 1
    )
    SELECT jsonb_build_object(
        'user_id', user_id,
        'balance', coalesce((SELECT b.balance FROM credits.balances b
                              WHERE b.user_id = account_at.user_id), 0),
        'spendable', (SELECT coalesce(sum(m.remaining), 0) FROM mine m
                       WHERE m.expires_at IS NULL OR m.expires_at > at),
        'next_expiry', (SELECT jsonb_build_object('amount', e.amount, 'expires_at', e.expires_at)
                          FROM next_expiry e),
        'next_grant', (SELECT jsonb_build_object('date', g.due_day, 'amount', g.amount)
                         FROM next_grant g))
      INTO v_account;
    RETURN v_account;
END
$$;

-- One user's ledger entries, newest first, at most `lim` (1 to 100) with entry ids below
-- `before` (the last entry_id of the previous page): keyset paging, no OFFSET.
CREATE OR REPLACE FUNCTION credits.statement(user_id text, lim integer DEFAULT 50, before bigint DEFAULT NULL)
RETURNS TABLE (
    entry_id      bigint,
    created_at    timestamptz,
    type          text,
    amount        integer,
    balance_after bigint,
    reference_id  text,
    service       text,
    metadata      jsonb,
    batch_id      bigint,
    source        text,
    expires_at    timestamptz
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM credits.checked_text(statement.user_id, 'user_id', 200);
    IF lim IS NULL OR lim < 1 THEN
        RAISE EXCEPTION 'limit must be a whole number from 1 to 100, got %', coalesce(lim::text, 'null')
            USING ERRCODE = '22023';
    ELSIF lim > 100 THEN
        RAISE EXCEPTION 'limit must be at most 100, got %', lim USING ERRCODE = '22003';
    ELSIF before IS NOT NULL AND before < 1 THEN
        RAISE EXCEPTION 'before must be an entry id above 0, got %', before USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT t.id, t.created_at, t.type, t.amount, t.balance_after, t.reference_id, t.service,
               t.metadata, t.batch_id, b.source, b.expires_at
          FROM credits.transactions t
          JOIN credits.batches b ON b.id = t.batch_id
         WHERE t.user_id = statement.user_id
           AND (statement.before IS NULL OR t.id < statement.before)
         ORDER BY t.id DESC
         LIMIT lim;
END
$$;

-- What apps call: the functions above at the database's clock (now(), the transaction's start).
CREATE OR REPLACE FUNCTION credits.grant_credits(
    user_id text, amount bigint, source text, reference_id text,
    validity_days bigint DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.grant_credits_at(now(), $1, $2, $3, $4, $5, $6, $7) $$;

CREATE OR REPLACE FUNCTION credits.buy_package(user_id text, package_id text, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.buy_package_at(now(), $1, $2, $3) $$;

CREATE OR REPLACE FUNCTION credits.grant_registration_bonus(user_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.grant_registration_bonus_at(now(), $1) $$;

CREATE OR REPLACE FUNCTION credits.spend(
    user_id text, amount bigint, reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.spend_at(now(), $1, $2, NULL, NULL, $3, $4) $$;

CREATE OR REPLACE FUNCTION credits.spend_service(
    user_id text, service text, quantity bigint, reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.spend_at(now(), $1, NULL, $2, $3, $4, $5) $$;

CREATE OR REPLACE FUNCTION credits.reverse_spend(user_id text, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.reverse_spend_at(now(), $1, $2) $$;

CREATE OR REPLACE FUNCTION credits.void_grant(reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.void_grant_at(now(), $1) $$;

CREATE OR REPLACE FUNCTION credits.account(user_id text, eligible_statuses text[] DEFAULT '{active}')
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.account_at(now(), $1, $2) $$;

-- Nobody may call these unless granted (sql/roles.sql): PUBLIC may run any function by default.
REVOKE ALL ON FUNCTION
    credits.checked_text(text, text, integer),
    credits.checked_count(bigint, text),
    credits.checked_grant_reference(text),
    credits.checked_expiry(timestamptz, bigint, timestamptz),
    credits.checked_metadata(jsonb),
    credits.grant_batch(text, integer, text, text, timestamptz, jsonb, boolean, boolean),
    credits.grant_answer(credits.batches, bigint, boolean),
    credits.known_package(text),
    credits.reversal_answer(text, text, bigint, bigint, bigint, jsonb, boolean),
    credits.grant_credits_at(timestamptz, text, bigint, text, text, bigint, timestamptz, jsonb),
    credits.buy_package_at(timestamptz, text, text, text),
    credits.grant_registration_bonus_at(timestamptz, text),
    credits.spend_at(timestamptz, text, bigint, text, bigint, text, jsonb),
    credits.spend_replay(text, text, bigint, text, bigint),
    credits.reverse_spend_at(timestamptz, text, text),
    credits.void_grant_at(timestamptz, text),
    credits.account_at(timestamptz, text, text[]),
    credits.grant_credits(text, bigint, text, text, bigint, timestamptz, jsonb),
    credits.buy_package(text, text, text),
    credits.can_buy_package(text, text),
    credits.grant_registration_bonus(text),
    credits.spend(text, bigint, text, jsonb),
    credits.spend_service(text, text, bigint, text, jsonb),
    credits.reverse_spend(text, text),
    credits.void_grant(text),
    credits.account(text, text[]),
    credits.statement(text, integer, bigint)
FROM PUBLIC;

INSERT INTO credits.schema_migrations (version, name) VALUES (1, 'credits_schema')
ON CONFLICT (version) DO NOTHING;
