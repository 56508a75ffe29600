-- ledger_by_month: the console's finance report, one row per UTC month from the ledger's first
-- to this one: credits granted (in all and by the batches' source), spent (net of reversals),
-- expired (breakage, with lapses: reversed credits written off at once), voided, and the
-- balance outstanding at the month's end (every entry up to then added up). Read from the
-- daily summary (credits.ledger_days) plus the ledger's entries not in it yet (by id).
WITH flows AS (
    SELECT date_trunc('month', d.day)::date AS month, d.source, d.granted, d.spent, d.expired,
           d.voided
      FROM credits.ledger_days d
    UNION ALL
    SELECT date_trunc('month', f.day)::date, f.source, f.granted, f.spent, f.expired, f.voided
      FROM credits.ledger_summary s
     CROSS JOIN LATERAL credits.ledger_flows(s.through_id, 9223372036854775807) f
),
moved AS (
    SELECT f.month, sum(f.granted) AS granted, sum(f.spent) AS spent, sum(f.expired) AS expired,
           sum(f.voided) AS voided, sum(f.granted - f.spent - f.expired - f.voided) AS net
      FROM flows f
     GROUP BY f.month
),
by_source AS (
    SELECT g.month, jsonb_object_agg(g.source, g.granted ORDER BY g.source) AS granted_by_source
      FROM (SELECT f.month, f.source, sum(f.granted) AS granted
              FROM flows f
             WHERE f.source <> ''
             GROUP BY 1, 2) AS g
     GROUP BY g.month
),
months AS (
    SELECT m::date AS month
      FROM generate_series((SELECT min(month) FROM moved),
                           date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS m
)
SELECT mo.month,
       coalesce(m.granted, 0)::bigint AS granted,
       coalesce(s.granted_by_source, '{}') AS granted_by_source,
       coalesce(m.spent, 0)::bigint AS spent,
       coalesce(m.expired, 0)::bigint AS expired,
       coalesce(m.voided, 0)::bigint AS voided,
       (sum(coalesce(m.net, 0)) OVER (ORDER BY mo.month))::bigint AS outstanding
  FROM months mo
  LEFT JOIN moved m ON m.month = mo.month
  LEFT JOIN by_source s ON s.month = mo.month
 ORDER BY mo.month
