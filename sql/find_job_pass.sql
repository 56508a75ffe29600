-- find_job_pass: the stripes of the job's pass for run_date, where each one stands.
SELECT stripe AS number, cutoff, catch_up_from, after_key, upper_key, totals, complete,
       walked, held_keys, held_after
  FROM credits.job_progress
 WHERE job = %(job)s AND run_date = %(run_date)s
 ORDER BY stripe
