-- list_job_runs: the most recent runs, newest first, of one job or (job null) of all (grant,
-- expire, deliver), for operators reading what the jobs did.
SELECT id, job, status, run_date, started_at, finished_at, results, error
  FROM credits.job_runs
 WHERE %(job)s::text IS NULL OR job = %(job)s::text
 ORDER BY started_at DESC, id
 LIMIT %(limit)s
