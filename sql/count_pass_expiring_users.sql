-- count_pass_expiring_users: how many users an expire pass has left after after_key
-- (the length of the CLI's progress bar).
SELECT count(DISTINCT user_id) AS keys
  FROM credits.batches
 WHERE status = 'active'
   AND expires_at <= %(cutoff)s
   AND (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
