-- notice_expiring_batches: credits.expiring_soon for every active batch that lapses within
-- [notifications] expiring_days of the cutoff and no earlier scan announced, one event per
-- batch, in one statement. Nothing without the setting. The previous scan (credits.
-- notice_horizon) announced every batch it could see that lapses by its horizon, so a batch is
-- announced here when it lapses after that horizon, or when that scan's snapshot could not see
-- it (written by a transaction that had not committed then); it is never announced twice,
-- whichever order the transactions that write batches commit in. A scan writes no row per
-- batch, only its own horizon and snapshot (the statement's, pg_current_snapshot()).
-- Run after lock_expiring_notices in the same transaction: two scans take turns, and the later
-- one reads the horizon the earlier one left.
WITH scan AS (
    SELECT coalesce(%(cutoff)s, now()) AS cutoff,
           greatest(h.horizon,
                    coalesce(%(cutoff)s, now()) + make_interval(days => n.expiring_days))
               AS horizon,
           h.horizon AS previous, h.seen
      FROM credits.notifications n
      LEFT JOIN credits.notice_horizon h ON true
     WHERE n.expiring_days IS NOT NULL
),
soon AS (
    SELECT b.id, b.user_id, b.remaining, b.expires_at
      FROM credits.batches b, scan s
     WHERE b.status = 'active'
       AND b.expires_at > s.cutoff
       AND b.expires_at <= s.horizon
       AND (s.previous IS NULL
            OR b.expires_at > s.previous
            OR NOT pg_visible_in_snapshot(b.created_xid, s.seen))
),
moved AS (
    INSERT INTO credits.notice_horizon (horizon, seen)
    SELECT s.horizon, pg_current_snapshot() FROM scan s
    ON CONFLICT (singleton) DO UPDATE SET horizon = excluded.horizon, seen = excluded.seen
),
inserted AS (
    INSERT INTO credits.events (type, user_id, payload)
    SELECT 'credits.expiring_soon', s.user_id,
           jsonb_build_object('user_id', s.user_id, 'batch_id', s.id, 'amount', s.remaining,
                              'expires_at', s.expires_at)
      FROM soon s
    RETURNING id
)
SELECT count(*) AS noticed, max(id) AS last_id FROM inserted
