-- The credits tables and indexes as migration 0001 leaves them, written to be read (0001
-- itself is the in-place upgrade of every release before migrations). Each later migration
-- adds its own concern's tables and is read as it is (0002: the console's); the functions are
-- sql/functions/, who may do what is sql/roles.sql. tests/test_migrations.py keeps this file,
-- followed by the later migrations and the functions, equal to a database migrated from
-- nothing (docs/DATABASE.md, Migrations).

CREATE SCHEMA credits;

-- Which migrations (sql/migrations/NNNN_name.sql) this database has had.
CREATE TABLE credits.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Input, written by the host app: what each plan grants every month.
-- validity_days NULL means the plan's credits never expire.
CREATE TABLE credits.plans (
    plan_id         text PRIMARY KEY,
    monthly_credits integer NOT NULL CHECK (monthly_credits > 0),
    validity_days   integer NULL CHECK (validity_days > 0)
);

-- Input, written by the host app (or replaced by a view with the same columns).
-- No foreign key to plans: a subscription on a missing plan is reported, not rejected.
CREATE TABLE credits.subscriptions (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    plan_id    text NOT NULL,
    status     text NOT NULL,
    started_at timestamptz NOT NULL,
    ends_at    timestamptz NULL
);

-- The account finds one user's subscriptions (unless the host app made them a view). Only
-- user ids an index entry can hold: the host may write longer ones (the grant fails them).
CREATE INDEX subscriptions_user_id_idx ON credits.subscriptions (user_id)
    WHERE octet_length(user_id) <= 800;

-- The plans file's other sections (credits/plans.py loads them, all or nothing, with the plans).
CREATE TABLE credits.registration (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    credits       integer NOT NULL CHECK (credits > 0),
    validity_days integer NULL CHECK (validity_days BETWEEN 1 AND 36500)
);

CREATE TABLE credits.packages (
    package_id    text PRIMARY KEY,
    credits       integer NOT NULL CHECK (credits > 0),
    bonus         integer NOT NULL DEFAULT 0 CHECK (bonus >= 0),
    validity_days integer NULL CHECK (validity_days BETWEEN 1 AND 36500),
    -- A pack is one batch of credits + bonus: it must fit a batch's amount.
    CONSTRAINT packages_amount_fits CHECK (credits::bigint + bonus <= 2147483647)
);

CREATE TABLE credits.services (
    service text PRIMARY KEY,
    cost    integer NOT NULL CHECK (cost > 0)
);

CREATE TABLE credits.limits (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_balance bigint NULL CHECK (max_balance > 0)
);

-- A batch is one grant of credits; spending draws it down, expiry closes it, a void takes
-- back what remains. An active batch still holds credits; any other holds none.
-- Room in each page: a spend's draw (remaining only) is then a HOT update, no new index
-- entries (docs/PERFORMANCE.md, Spending).
CREATE TABLE credits.batches (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      text NOT NULL,
    source       text NOT NULL,
    reference_id text NOT NULL,
    grant_period text NULL,
    amount       integer NOT NULL CHECK (amount > 0),
    remaining    integer NOT NULL CHECK (remaining BETWEEN 0 AND amount),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NULL,
    status       text NOT NULL DEFAULT 'active' CONSTRAINT batches_status_check
                 CHECK (status IN ('active', 'consumed', 'expired', 'voided')),
    CONSTRAINT batches_active_iff_remaining CHECK ((status = 'active') = (remaining > 0))
) WITH (fillfactor = 90);

-- The order of the batches' reference index: a reference's last seven characters first (a
-- subscription grant's month, YYYY-MM, credits.subscription_reference), then the whole of it.
-- Unique on the pair is unique on the reference, the first being a function of the second;
-- in this order a month's grants lie side by side, so a day's grants write to the month's
-- part of the index, not to a page per subscription across all of history
-- (docs/PERFORMANCE.md). A lookup by reference names both columns:
--     credits.reference_order(b.reference_id) = credits.reference_order(r) AND b.reference_id = r
-- The index is built on this function: it must never change.
CREATE FUNCTION credits.reference_order(reference_id text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT right(reference_id, 7)
$$;

-- reference_id is the idempotency key: one batch per subscription and grant period, one per
-- purchase or one-off grant.
CREATE UNIQUE INDEX batches_reference_key
    ON credits.batches ((credits.reference_order(reference_id)), reference_id);

-- Consumers and the expire job only look at a user's active batches, soonest-expiring first.
CREATE INDEX batches_active_user_id_idx
    ON credits.batches (user_id, expires_at) WHERE status = 'active';

-- The ledger: one row per movement of credits in or out of a batch. Grants and reversals
-- (credits of a spend given back) add credits; a spend (consume), an expiry, a lapse (given
-- back to a batch that can no longer hold them: written off at once) and a void (what
-- remained of a voided grant) take them away. balance_after is the user's balance after the
-- entry (NULL on entries written before the column existed); service and metadata are a
-- spend's.
CREATE TABLE credits.transactions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text NOT NULL,
    -- No foreign key to batches: every ledger row is written by the statement that writes or
    -- locks its batch, and the per-row check cost as much as the ledger insert itself
    -- (docs/PERFORMANCE.md). Batches are never deleted; verify checks the sums.
    batch_id      bigint NOT NULL,
    type          text NOT NULL CONSTRAINT transactions_type_check
                  CHECK (type IN ('grant', 'consume', 'expire', 'reverse', 'lapse', 'void')),
    amount        integer NOT NULL,
    reference_id  text NOT NULL,
    job_id        uuid NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    balance_after bigint NULL,
    service       text NULL,
    metadata      jsonb NULL,
    CONSTRAINT transactions_amount_sign
        CHECK ((type IN ('grant', 'reverse')) = (amount > 0) AND amount <> 0)
);

-- A batch is granted once, expired once and voided once (reversals may come back to it often).
CREATE UNIQUE INDEX transactions_once_per_batch_key
    ON credits.transactions (batch_id, type) WHERE type IN ('grant', 'expire', 'void');
-- A consumer's reference_id is its idempotency key, per user.
CREATE UNIQUE INDEX transactions_consume_reference_key
    ON credits.transactions (user_id, reference_id, batch_id) WHERE type = 'consume';
-- A spend is reversed once: one reverse (and at most one lapse) per spend and batch.
CREATE UNIQUE INDEX transactions_reversal_key
    ON credits.transactions (user_id, reference_id, batch_id, type)
    WHERE type IN ('reverse', 'lapse');
-- The statement pages through one user's entries newest first, by entry id.
CREATE INDEX transactions_user_id_id_idx ON credits.transactions (user_id, id);

-- Room left in each page (fillfactor) lets a balance change be a HOT update: a new row
-- version on the same page and no new index entry, about half the cost (docs/PERFORMANCE.md).
CREATE TABLE credits.balances (
    user_id    text PRIMARY KEY,
    balance    bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- Each subscription's last granted month (the first day of the latest month it has a batch
-- for), written by the statement that grants the batch. Only a shortcut: a run skips the
-- subscriptions recorded as granted this month without probing batches_reference_key
-- for each; the unique reference_id stays what makes a second grant impossible. Room in each
-- page lets the monthly change be a HOT update.
CREATE TABLE credits.subscription_grants (
    subscription_id text PRIMARY KEY,
    period_start    date NOT NULL
) WITH (fillfactor = 70);

-- One row per run of a job: what it did, or why it failed.
CREATE TABLE credits.job_runs (
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

CREATE INDEX job_runs_job_started_at_idx ON credits.job_runs (job, started_at);

-- Where each job's pass over its keys stands. A pass works through subscriptions (grant) or
-- users (expire) in key order, one chunk per transaction; its keys are split into stripes
-- (key ranges) worked side by side, one row each. A stripe's row moves on in the same
-- transaction as each of its chunks, so a run out of time stops between chunks and the next
-- call carries on after after_key, and totals add up the stripe's chunks exactly.
CREATE TABLE credits.job_progress (
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
