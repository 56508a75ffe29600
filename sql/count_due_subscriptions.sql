-- count_due_subscriptions: what grant_due_subscriptions would do for run_date, without
-- writing anything (the dry run).
SELECT count(*) AS processed,
       count(*) FILTER (WHERE NOT already_granted AND failure IS NULL) AS successful,
       count(*) FILTER (WHERE already_granted) AS skipped,
       count(*) FILTER (WHERE NOT already_granted AND failure IS NOT NULL) AS failed
  FROM credits.due_grants(%(run_date)s, %(eligible_statuses)s, %(catch_up_from)s, NULL, NULL)
