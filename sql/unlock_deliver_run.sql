-- unlock_deliver_run: release a delivery run's lock at its end (see lock_deliver_run).
SELECT pg_advisory_unlock(hashtextextended('credits.deliver.' || %(job_id)s::text, 0)) AS unlocked
