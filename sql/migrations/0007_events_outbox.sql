-- 0007_events_outbox: the events outbox (docs/EVENTS.md). Every change of credits writes its
-- events in its own transaction (the triggers of sql/functions/70_events.sql), so a committed
-- change has its events and a rolled-back one none; the host reads them (credits.events_after,
-- LISTEN credits_events) or the service delivers them as signed webhooks. Safe to run again.

-- One event: what happened to whom. delivered_at is set once a receiver took it; a pending
-- event is tried again at next_attempt_at, and given up (given_up_at) after the service's
-- number of attempts, until an operator sends it again.
CREATE TABLE IF NOT EXISTS credits.events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type            text NOT NULL,
    user_id         text NULL,          -- NULL: an event of the service (credits.job_failed)
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NULL,
    given_up_at     timestamptz NULL
);

-- Delivery goes user by user in event order: the pending events by user, then id, find a
-- user's oldest pending event and whether an earlier one still waits.
CREATE INDEX IF NOT EXISTS events_pending_user_idx
    ON credits.events ((coalesce(user_id, '')), id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
-- Retention deletes the oldest events first. Events are written in time order, so a BRIN
-- index finds them at a fraction of a B-tree's cost on every insert.
CREATE INDEX IF NOT EXISTS events_created_at_idx ON credits.events USING brin (created_at);

-- The plans file's [notifications]: how many days before a batch lapses it is announced
-- (credits.expiring_soon), and the balance under which a user's is low (credits.balance_low).
-- NULL: that event is not written.
CREATE TABLE IF NOT EXISTS credits.notifications (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    expiring_days integer NULL CHECK (expiring_days BETWEEN 1 AND 36500),
    low_balance   bigint NULL CHECK (low_balance > 0)
);

-- The users whose balance is low now: set when it falls under the threshold, cleared when it
-- comes back, so each crossing is one event and a balance that stays low repeats none.
CREATE TABLE IF NOT EXISTS credits.low_balances (
    user_id text PRIMARY KEY,
    since   timestamptz NOT NULL DEFAULT now()
);

-- The batches whose credits.expiring_soon was written: one notice per batch, ever.
CREATE TABLE IF NOT EXISTS credits.batch_notices (
    batch_id    bigint PRIMARY KEY,
    noticed_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO credits.schema_migrations (version, name) VALUES (7, 'events_outbox')
ON CONFLICT (version) DO NOTHING;
