-- find_invariant_violations: every user whose balance, ledger total and active batches'
-- remaining credits do not all agree, or whose ledger entries state a balance_after that is
-- not the running total of the entries up to them (the first `limit`, with the total count).
-- Entries written before balance_after existed have none and are not checked.
WITH ledger AS (
    SELECT user_id, sum(amount) AS total FROM credits.transactions GROUP BY user_id
),
active AS (
    SELECT user_id, sum(remaining) AS total
      FROM credits.batches
     WHERE status = 'active'
     GROUP BY user_id
),
misstated AS (
    SELECT user_id, count(*) AS entries
      FROM (SELECT user_id, balance_after,
                   sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS running
              FROM credits.transactions) t
     WHERE balance_after <> running
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
       coalesce(m.entries, 0) AS misstated_entries,
       count(*) OVER () AS violations
  FROM users u
  LEFT JOIN credits.balances bal ON bal.user_id = u.user_id
  LEFT JOIN ledger l ON l.user_id = u.user_id
  LEFT JOIN active a ON a.user_id = u.user_id
  LEFT JOIN misstated m ON m.user_id = u.user_id
 WHERE bal.balance IS DISTINCT FROM coalesce(l.total, 0)
    OR coalesce(l.total, 0) <> coalesce(a.total, 0)
    OR m.entries IS NOT NULL
 ORDER BY u.user_id
 LIMIT %(limit)s
