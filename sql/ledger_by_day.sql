-- ledger_by_day: credits granted, spent, expired and voided on each of the last %(days)s UTC
-- days up to today, and the balance outstanding at each day's end, for the console's charts.
-- Spent is net of reversals and expired counts lapses (reversed credits written off at once),
-- so each day's granted - spent - expired - voided is the change in the outstanding balance.
-- Outstanding is counted back from today's total (the balances, which equal the ledger's sum).
WITH days AS (
    SELECT d::date AS day
      FROM generate_series((now() AT TIME ZONE 'UTC')::date - (%(days)s::integer - 1),
                           (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
),
moved AS (
    SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'grant'), 0) AS granted,
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('consume', 'reverse')), 0) AS spent,
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('expire', 'lapse')), 0) AS expired,
           coalesce(-sum(t.amount) FILTER (WHERE t.type = 'void'), 0) AS voided,
           sum(t.amount) AS net
      FROM credits.transactions t
     WHERE t.created_at >= (SELECT min(day) FROM days)::timestamp AT TIME ZONE 'UTC'
     GROUP BY 1
)
SELECT d.day,
       coalesce(m.granted, 0) AS granted,
       coalesce(m.spent, 0) AS spent,
       coalesce(m.expired, 0) AS expired,
       coalesce(m.voided, 0) AS voided,
       ((SELECT coalesce(sum(b.balance), 0) FROM credits.balances b)
        - coalesce((SELECT sum(later.net) FROM moved later WHERE later.day > d.day), 0)
       )::bigint AS outstanding
  FROM days d
  LEFT JOIN moved m ON m.day = d.day
 ORDER BY d.day
