-- find_catch_up_start: the first due day a new grant pass for run_date covers before its own
-- month: the day after the last completed grant pass, at most catch_up_days before run_date,
-- so a missed month's end is caught up. NULL (run_date's month only, as always) when no pass
-- was completed before, or the last one was on or after run_date (a back-fill): a first
-- deployment never grants months before it.
SELECT CASE WHEN last_pass < %(run_date)s
            THEN greatest(last_pass + 1, %(run_date)s::date - %(catch_up_days)s::integer)
            END AS catch_up_from
  FROM (SELECT max(run_date) AS last_pass
          FROM (SELECT run_date
                  FROM credits.job_progress
                 WHERE job = 'grant'
                 GROUP BY run_date
                HAVING bool_and(complete)) AS completed) AS last
