-- notice_expiring_batches: credits.expiring_soon for every active batch that lapses within
-- [notifications] expiring_days of the cutoff and has had no notice yet, one event per batch,
-- in one statement; the batch's notice row keeps it from a second. Nothing without the setting.
-- Run after lock_expiring_notices in the same transaction, so two scans never announce the
-- same batch: the later one waits, then sees the earlier one's notices.
WITH soon AS (
    SELECT b.id, b.user_id, b.remaining, b.expires_at
      FROM credits.batches b
      JOIN credits.notifications n ON n.expiring_days IS NOT NULL
     WHERE b.status = 'active'
       AND b.expires_at > coalesce(%(cutoff)s, now())
       AND b.expires_at <= coalesce(%(cutoff)s, now()) + make_interval(days => n.expiring_days)
       AND NOT EXISTS (SELECT FROM credits.batch_notices x WHERE x.batch_id = b.id)
),
noticed AS (
    INSERT INTO credits.batch_notices (batch_id)
    SELECT id FROM soon
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
