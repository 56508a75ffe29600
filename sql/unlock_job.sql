-- unlock_job: release the job's lock at the end of a run (see lock_job).
SELECT pg_advisory_unlock(hashtextextended('credits.job.' || %(job)s, 0)) AS unlocked
