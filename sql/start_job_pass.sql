-- start_job_pass: a new pass of the job for run_date, one stripe per key range: stripe i
-- runs after after_keys[i] (NULL: from the first key) up to upper_keys[i] (NULL: to the end).
-- A later call the same day starts a new pass and looks at every key again (harmless:
-- grant and expire are idempotent, and anything that became due since is picked up).
-- A grant pass keeps its catch_up_from (find_catch_up_start) for all its calls.
INSERT INTO credits.job_progress AS p
       (job, run_date, stripe, cutoff, catch_up_from, after_key, upper_key, totals)
SELECT %(job)s, %(run_date)s, s.stripe - 1, coalesce(%(cutoff)s::timestamptz, now()),
       %(catch_up_from)s::date,
       s.after_key, s.upper_key, %(totals)s
  FROM unnest(%(after_keys)s::text[], %(upper_keys)s::text[])
       WITH ORDINALITY AS s (after_key, upper_key, stripe)
RETURNING stripe AS number, cutoff, catch_up_from, after_key, upper_key, totals, complete,
          walked, held_keys, held_after
