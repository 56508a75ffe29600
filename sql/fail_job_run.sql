-- fail_job_run: mark a run failed with the reason. Its failed chunk was rolled back; results
-- holds what its earlier chunks committed.
UPDATE credits.job_runs
   SET status = 'failed', finished_at = clock_timestamp(), error = %(error)s,
       results = %(results)s
 WHERE id = %(job_id)s
