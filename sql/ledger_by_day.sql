-- ledger_by_day: credits granted, spent, expired and voided on each of the last %(days)s UTC
-- days up to today, and the balance outstanding at each day's end, for the console's charts.
-- Spent is net of reversals and expired counts lapses (reversed credits written off at once),
-- so each day's granted - spent - expired - voided is the change in the outstanding balance.
-- The days are the summary (credits.ledger_days) plus the ledger's entries not in it yet (the
-- tail, read by id); outstanding adds up every day to the day's end.
WITH flows AS (
    SELECT d.day, d.granted, d.spent, d.expired, d.voided
      FROM credits.ledger_days d
    UNION ALL
    SELECT f.day, f.granted, f.spent, f.expired, f.voided
      FROM credits.ledger_summary s
     CROSS JOIN LATERAL credits.ledger_flows(s.through_id, 9223372036854775807) f
),
moved AS (
    SELECT f.day, sum(f.granted) AS granted, sum(f.spent) AS spent, sum(f.expired) AS expired,
           sum(f.voided) AS voided, sum(f.granted - f.spent - f.expired - f.voided) AS net
      FROM flows f
     GROUP BY f.day
),
days AS (
    SELECT d::date AS day
      FROM generate_series((now() AT TIME ZONE 'UTC')::date - (%(days)s::integer - 1),
                           (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
)
SELECT d.day,
       coalesce(m.granted, 0)::bigint AS granted,
       coalesce(m.spent, 0)::bigint AS spent,
       coalesce(m.expired, 0)::bigint AS expired,
       coalesce(m.voided, 0)::bigint AS voided,
       coalesce((SELECT sum(upto.net) FROM moved upto WHERE upto.day <= d.day), 0)::bigint
           AS outstanding
  FROM days d
  LEFT JOIN moved m ON m.day = d.day
 ORDER BY d.day
