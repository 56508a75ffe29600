-- lock_job: one run of a job at a time. A transaction-level lock ends with the transaction,
-- so a run that crashes or loses its connection releases it too. Answers false when taken.
SELECT pg_try_advisory_xact_lock(hashtextextended('credits.job.' || %(job)s, 0)) AS locked
