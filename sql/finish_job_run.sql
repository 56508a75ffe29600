-- finish_job_run: record what a run did: succeeded when its pass is done, partial when its
-- time budget ran out first (the next call carries on).
UPDATE credits.job_runs
   SET status = CASE WHEN %(complete)s THEN 'succeeded' ELSE 'partial' END,
       finished_at = clock_timestamp(),
       results = %(results)s
 WHERE id = %(job_id)s
