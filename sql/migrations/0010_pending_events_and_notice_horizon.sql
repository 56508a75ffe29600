-- 0010_pending_events_and_notice_horizon: what an event and a batch cost the outbox on write
-- (docs/PERFORMANCE.md, Events). Safe to run again.
--
-- Delivery finds the pending events in id order, and a user's events waiting behind one that
-- failed by the few events being retried, so an event written costs one entry appended to an
-- index by id instead of one placed among every pending event by user (sql/claim_events.sql).
DROP INDEX IF EXISTS credits.events_pending_user_idx;
CREATE INDEX IF NOT EXISTS events_pending_idx
    ON credits.events (id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
-- An event enters this index when its first attempt fails and leaves it once delivered, given
-- up or sent again: it holds the retries only, never a newly written event.
CREATE INDEX IF NOT EXISTS events_retrying_idx
    ON credits.events ((coalesce(user_id, '')), id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL AND attempts > 0;

-- The transaction that wrote each batch. A scan for credits.expiring_soon announces a batch
-- once: when it lapses after the previous scan's horizon, or when the previous scan could not
-- see it yet (sql/notice_expiring_batches.sql). Batches written before this migration have
-- none: every scan after it could see them.
ALTER TABLE credits.batches ADD COLUMN IF NOT EXISTS created_xid xid8 NULL;
ALTER TABLE credits.batches ALTER COLUMN created_xid SET DEFAULT pg_current_xact_id();

-- The last expiring-soon scan: every batch lapsing by its horizon that it could see (its
-- snapshot) was announced. One row; none before the first scan.
CREATE TABLE IF NOT EXISTS credits.notice_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon   timestamptz NOT NULL,
    seen      pg_snapshot NOT NULL
);

-- From one notice row per batch to the horizon: the horizon starts where the notices reached
-- (now plus the notice days, or the latest lapse announced), with this migration's snapshot,
-- this transaction counted as unfinished; a batch within it that had no notice is marked as
-- written by this transaction, so the next scan announces it.
DO $$
DECLARE
    v_own xid8 := pg_current_xact_id();
    v_horizon timestamptz;
BEGIN
    IF to_regclass('credits.batch_notices') IS NULL THEN
        RETURN;
    END IF;
    SELECT greatest((SELECT now() + make_interval(days => n.expiring_days)
                       FROM credits.notifications n),
                    (SELECT max(b.expires_at)
                       FROM credits.batch_notices x JOIN credits.batches b ON b.id = x.batch_id))
      INTO v_horizon;
    IF v_horizon IS NOT NULL THEN
        INSERT INTO credits.notice_horizon (horizon, seen)
        SELECT v_horizon,
               format('%s:%s:%s',
                      least(pg_snapshot_xmin(s), v_own),
                      greatest(pg_snapshot_xmax(s), (v_own::text::bigint + 1)::text::xid8),
                      (SELECT string_agg(x::text, ',' ORDER BY x::text::bigint)
                         FROM (SELECT pg_snapshot_xip(s) AS x UNION SELECT v_own) xip)
               )::pg_snapshot
          FROM pg_current_snapshot() s
        ON CONFLICT (singleton) DO NOTHING;
        UPDATE credits.batches b
           SET created_xid = v_own
         WHERE b.status = 'active'
           AND b.expires_at <= v_horizon
           AND NOT EXISTS (SELECT FROM credits.batch_notices x WHERE x.batch_id = b.id);
    END IF;
    DROP TABLE credits.batch_notices;
END
$$;

INSERT INTO credits.schema_migrations (version, name)
VALUES (10, 'pending_events_and_notice_horizon')
ON CONFLICT (version) DO NOTHING;
