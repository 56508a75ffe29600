-- count_pass_subscriptions: how many subscriptions a grant stripe has left (after after_key,
-- up to upper_key; both NULL: all of them).
SELECT count(*) AS keys
  FROM credits.subscriptions
 WHERE (%(after_key)s::text IS NULL OR id > %(after_key)s)
   AND (%(upper_key)s::text IS NULL OR id <= %(upper_key)s)
