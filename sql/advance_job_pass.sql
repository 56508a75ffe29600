-- advance_job_pass: move a stripe of the pass past the chunk just done, in the chunk's own
-- transaction, so a chunk's work and the stripe's position commit or roll back together.
UPDATE credits.job_progress
   SET after_key = %(after_key)s, totals = %(totals)s, complete = %(complete)s,
       updated_at = now()
 WHERE job = %(job)s AND run_date = %(run_date)s AND stripe = %(stripe)s
