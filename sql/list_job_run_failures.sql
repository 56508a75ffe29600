-- list_job_run_failures: the subscriptions a grant run could not grant and why
-- (credits.job_run_failures: the first ones the run met), in subscription order.
SELECT f.subscription_id, f.grant_period, f.user_id, f.reason, f.failed_at
  FROM credits.job_run_failures f
 WHERE f.run_id = %(run_id)s
 ORDER BY f.subscription_id, f.grant_period
