-- find_job_run: one job run by its id, for the console's page of the run.
SELECT r.id, r.job, r.status, r.run_date, r.started_at, r.finished_at, r.results, r.error
  FROM credits.job_runs r
 WHERE r.id = %(run_id)s
