-- notice_expiring_batches: credits.expiring_soon for every active batch that lapses after the
-- cutoff, by the horizon, and no earlier scan announced, one event per batch, in one statement,
-- with the reach read_notice_horizon answered (its values, so the plan fits how many batches
-- it reaches). The previous scan announced every batch it could see that lapses by its horizon
-- (previous), so a batch is announced here when it lapses after that horizon, or when that
-- scan's snapshot (seen) could not see it: written by a transaction that had not committed
-- then. A batch is never announced twice, whichever order the transactions that write batches
-- commit in, and a scan writes no row per batch, only its own horizon and snapshot (the
-- statement's, pg_current_snapshot()). The events announced are the statement's row count (no
-- RETURNING: a million ids kept only to be counted cost about a twentieth of the scan).
WITH soon AS (
    SELECT b.id, b.user_id, b.remaining, b.expires_at
      FROM credits.batches b
     WHERE b.status = 'active'
       AND b.expires_at > %(cutoff)s
       AND b.expires_at <= %(horizon)s
       AND (%(previous)s::timestamptz IS NULL
            OR b.expires_at > %(previous)s
            OR NOT pg_visible_in_snapshot(b.created_xid, %(seen)s::pg_snapshot))
),
moved AS (
    INSERT INTO credits.notice_horizon (horizon, seen)
    VALUES (%(horizon)s, pg_current_snapshot())
    ON CONFLICT (singleton) DO UPDATE SET horizon = excluded.horizon, seen = excluded.seen
)
INSERT INTO credits.events (type, user_id, payload)
SELECT 'credits.expiring_soon', s.user_id,
       jsonb_build_object('user_id', s.user_id, 'batch_id', s.id, 'amount', s.remaining,
                          'expires_at', s.expires_at)
  FROM soon s
