-- abandon_job_runs: a run still marked running while this run holds the job's lock has lost
-- its process (a killed worker, a lost connection): say so instead of running for ever.
-- Its committed chunks stay; this run's pass carries on after them.
UPDATE credits.job_runs
   SET status = 'abandoned', finished_at = clock_timestamp(),
       error = 'its process stopped before the run finished'
 WHERE job = %(job)s
   AND status = 'running'
   AND id <> %(job_id)s
