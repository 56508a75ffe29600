-- lock_deliver_run: a delivery run holds a lock of its own, by its id, while it works (taken
-- before its row is written), so a later run can tell a live one from one whose process died
-- (abandon_deliver_runs). Deliveries run side by side: each claims its own events.
SELECT pg_advisory_lock(hashtextextended('credits.deliver.' || %(job_id)s::text, 0))
