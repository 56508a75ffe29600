-- console_job_runs: one page of job runs, newest first, of one job and one status or of all,
-- started before the cursor (the last run of the previous page: its start and id), for the
-- console's Runs page.
SELECT r.id, r.job, r.status, r.run_date, r.started_at, r.finished_at, r.results, r.error
  FROM credits.job_runs r
 WHERE (%(job)s::text IS NULL OR r.job = %(job)s::text)
   AND (%(status)s::text IS NULL OR r.status = %(status)s::text)
   AND (%(before_at)s::timestamptz IS NULL
        OR (r.started_at, r.id) < (%(before_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY r.started_at DESC, r.id DESC
 LIMIT %(limit)s
