-- fail_job_run: mark a run failed with the reason, after its work was rolled back.
UPDATE credits.job_runs
   SET status = 'failed', finished_at = clock_timestamp(), error = %(error)s
 WHERE id = %(job_id)s
