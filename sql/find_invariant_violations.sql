-- find_invariant_violations: every user whose balance, ledger total and active batches'
-- remaining credits do not all agree (the first `limit` of them, with the total count).
WITH ledger AS (
    SELECT user_id, sum(amount) AS total FROM credits.transactions GROUP BY user_id
),
active AS (
    SELECT user_id, sum(remaining) AS total
      FROM credits.batches
     WHERE status = 'active'
     GROUP BY user_id
),
users AS (
    SELECT user_id FROM credits.balances
    UNION SELECT user_id FROM ledger
    UNION SELECT user_id FROM active
)
SELECT u.user_id,
       bal.balance,
       coalesce(l.total, 0) AS ledger_total,
       coalesce(a.total, 0) AS active_remaining,
       count(*) OVER () AS violations
  FROM users u
  LEFT JOIN credits.balances bal ON bal.user_id = u.user_id
  LEFT JOIN ledger l ON l.user_id = u.user_id
  LEFT JOIN active a ON a.user_id = u.user_id
 WHERE bal.balance IS DISTINCT FROM coalesce(l.total, 0)
    OR coalesce(l.total, 0) <> coalesce(a.total, 0)
 ORDER BY u.user_id
 LIMIT %(limit)s
