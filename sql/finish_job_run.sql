-- finish_job_run: mark a run succeeded with its results, inside the run's own transaction,
-- so the row says succeeded exactly when the work committed.
UPDATE credits.job_runs
   SET status = 'succeeded', finished_at = clock_timestamp(), results = %(results)s
 WHERE id = %(job_id)s
