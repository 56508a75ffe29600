-- abandon_deliver_runs: a delivery run still marked running whose lock nobody holds has lost
-- its process (a killed worker, a lost connection): say so instead of running for ever. The
-- CASE keeps the probe off this run's own row (this session holds that lock, and would get it
-- again); a lock the probe takes ends with this transaction.
UPDATE credits.job_runs
   SET status = 'abandoned', finished_at = clock_timestamp(),
       error = 'its process stopped before the run finished'
 WHERE job = 'deliver'
   AND status = 'running'
   AND CASE WHEN id <> %(job_id)s
            THEN pg_try_advisory_xact_lock(hashtextextended('credits.deliver.' || id::text, 0))
            ELSE false
        END
