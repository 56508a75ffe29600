-- start_job_pass: the job's pass for run_date: the unfinished one, to carry on after its
-- after_key, or a new one from the first key. A finished pass is started over, so a later
-- call the same day looks at every key again (harmless: grant and expire are idempotent).
WITH started AS (
    INSERT INTO credits.job_progress AS p (job, run_date, cutoff, totals)
    VALUES (%(job)s, %(run_date)s, coalesce(%(cutoff)s::timestamptz, now()), %(totals)s)
    ON CONFLICT (job, run_date) DO UPDATE
       SET cutoff = excluded.cutoff, after_key = NULL, totals = excluded.totals,
           complete = false, started_at = now(), updated_at = now()
     WHERE p.complete
    RETURNING cutoff, after_key, totals
)
SELECT cutoff, after_key, totals FROM started
 UNION ALL
SELECT cutoff, after_key, totals
  FROM credits.job_progress
 WHERE job = %(job)s AND run_date = %(run_date)s
   AND NOT EXISTS (SELECT 1 FROM started)
