-- count_pass_users: how many users an expire stripe has left (after after_key, up to
-- upper_key; both NULL: all of them).
SELECT count(*) AS keys
  FROM credits.balances
 WHERE (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
   AND (%(upper_key)s::text IS NULL OR user_id <= %(upper_key)s)
