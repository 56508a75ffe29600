-- advance_job_pass: move a stripe of the pass past the chunk just done, in the chunk's own
-- transaction, so a chunk's work and the stripe's position commit or roll back together.
-- held_keys: the keys skipped for a lock an app transaction held, tried again once walked.
UPDATE credits.job_progress
   SET after_key = %(after_key)s, totals = %(totals)s, walked = %(walked)s,
       held_keys = %(held_keys)s, held_after = %(held_after)s,
       complete = %(walked)s AND cardinality(%(held_keys)s::text[]) = 0,
       updated_at = now()
 WHERE job = %(job)s AND run_date = %(run_date)s AND stripe = %(stripe)s
