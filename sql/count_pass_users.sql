-- count_pass_users: how many users an expire pass has left after after_key
-- (the length of the CLI's progress bar).
SELECT count(*) AS keys
  FROM credits.balances
 WHERE %(after_key)s::text IS NULL OR user_id > %(after_key)s
