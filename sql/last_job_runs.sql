-- last_job_runs: for each job, its latest run whatever its status, and when its latest
-- successful run finished; the status route tells a monitor from it whether the jobs keep
-- succeeding. Only 'succeeded' counts as success, so any other status text is shown as it is.
SELECT j.job,
       latest.id,
       latest.status,
       latest.run_date,
       latest.started_at,
       latest.finished_at,
       latest.results,
       latest.error,
       (SELECT max(r.finished_at)
          FROM credits.job_runs r
         WHERE r.job = j.job
           AND r.status = 'succeeded') AS last_succeeded_at
  FROM (VALUES ('grant', 1), ('expire', 2)) AS j (job, position)
  LEFT JOIN LATERAL (SELECT *
                       FROM credits.job_runs r
                      WHERE r.job = j.job
                      ORDER BY r.started_at DESC, r.id
                      LIMIT 1) AS latest ON true
 ORDER BY j.position
