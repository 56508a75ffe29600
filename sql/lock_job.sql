-- lock_job: one run of a job at a time, held across the run's chunk transactions. A session
-- lock ends with the connection, so a run whose process dies releases it too.
-- Answers false when another run holds it.
SELECT pg_try_advisory_lock(hashtextextended('credits.job.' || %(job)s, 0)) AS locked
