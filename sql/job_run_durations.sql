-- job_run_durations: each finished grant and expire run of the last %(days)s days, oldest
-- first, and how long it took in seconds, for the console's chart of run durations. Delivery
-- runs are left out: called every minute or so, they would crowd the jobs out of the chart.
SELECT r.id, r.job, r.status, r.started_at,
       extract(epoch FROM r.finished_at - r.started_at)::float8 AS seconds
  FROM credits.job_runs r
 WHERE r.started_at >= now() - make_interval(days => %(days)s::integer)
   AND r.finished_at IS NOT NULL
   AND r.job <> 'deliver'
 ORDER BY r.started_at, r.id
