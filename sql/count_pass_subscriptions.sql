-- count_pass_subscriptions: how many subscriptions a grant pass has left after after_key
-- (the length of the CLI's progress bar).
SELECT count(*) AS keys
  FROM credits.subscriptions
 WHERE %(after_key)s::text IS NULL OR id > %(after_key)s
