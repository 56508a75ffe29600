-- lock_expiring_notices: one expiring-soon scan at a time, until this transaction ends, so each
-- scan starts from the horizon the one before it left (the scans are short and daily; the
-- jobs' and the delivery's work takes no such lock).
SELECT pg_advisory_xact_lock(hashtext('credits.notice_expiring_batches'))
