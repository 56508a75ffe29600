-- unfinished_job_passes: earlier passes of the job that ran out of time and were never
-- finished; a run finishes them, oldest first, before its own.
SELECT DISTINCT run_date
  FROM credits.job_progress
 WHERE job = %(job)s AND run_date < %(run_date)s AND NOT complete
 ORDER BY run_date
