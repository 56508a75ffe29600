-- read_job_metrics: what /metrics says of each job, read at scrape time from job_runs so every
-- worker and every function instance reports the same: its latest run (start, duration while
-- finished, status, counts) and when its latest successful run finished. deliver is the
-- delivery runs (credits/delivery_runs.py). Times are seconds since the epoch, as Prometheus
-- takes them; a job that never ran has a row of nulls.
SELECT j.job,
       latest.status,
       extract(epoch FROM latest.started_at)::float8 AS started_seconds,
       extract(epoch FROM latest.finished_at - latest.started_at)::float8 AS duration_seconds,
       latest.results,
       (SELECT extract(epoch FROM max(r.finished_at))::float8
          FROM credits.job_runs r
         WHERE r.job = j.job
           AND r.status = 'succeeded') AS succeeded_seconds
  FROM (VALUES ('grant', 1), ('expire', 2), ('deliver', 3)) AS j (job, position)
  LEFT JOIN LATERAL (SELECT r.status, r.started_at, r.finished_at, r.results
                       FROM credits.job_runs r
                      WHERE r.job = j.job
                      ORDER BY r.started_at DESC, r.id
                      LIMIT 1) AS latest ON true
 ORDER BY j.position
