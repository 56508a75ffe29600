-- ledger_by_month: the console's finance report, one row per UTC month from the ledger's first
-- to this one: credits granted (in all and by the batches' source), spent (net of reversals),
-- expired (breakage, with lapses: reversed credits written off at once), voided, and the
-- balance outstanding at the month's end (every entry up to then added up).
WITH moved AS (
    SELECT date_trunc('month', t.created_at AT TIME ZONE 'UTC')::date AS month,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'grant'), 0) AS granted,
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('consume', 'reverse')), 0) AS spent,
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('expire', 'lapse')), 0) AS expired,
           coalesce(-sum(t.amount) FILTER (WHERE t.type = 'void'), 0) AS voided,
           sum(t.amount) AS net
      FROM credits.transactions t
     GROUP BY 1
),
by_source AS (
    SELECT g.month, jsonb_object_agg(g.source, g.granted ORDER BY g.source) AS granted_by_source
      FROM (SELECT date_trunc('month', t.created_at AT TIME ZONE 'UTC')::date AS month,
                   b.source, sum(t.amount) AS granted
              FROM credits.transactions t
              JOIN credits.batches b ON b.id = t.batch_id
             WHERE t.type = 'grant'
             GROUP BY 1, 2) AS g
     GROUP BY g.month
),
months AS (
    SELECT m::date AS month
      FROM generate_series((SELECT min(month) FROM moved),
                           date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS m
)
SELECT mo.month,
       coalesce(m.granted, 0) AS granted,
       coalesce(s.granted_by_source, '{}') AS granted_by_source,
       coalesce(m.spent, 0) AS spent,
       coalesce(m.expired, 0) AS expired,
       coalesce(m.voided, 0) AS voided,
       (sum(coalesce(m.net, 0)) OVER (ORDER BY mo.month))::bigint AS outstanding
  FROM months mo
  LEFT JOIN moved m ON m.month = mo.month
  LEFT JOIN by_source s ON s.month = mo.month
 ORDER BY mo.month
