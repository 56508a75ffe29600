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
)
-- The four per-user sets are matched by FULL JOINs, which PostgreSQL does only by hash or by
-- merge: the left joins of a union of them it once planned as nested loops over a million
-- users (docs/PERFORMANCE.md, item 14).
SELECT coalesce(bal.user_id, l.user_id, a.user_id, m.user_id) AS user_id,
       bal.balance,
       coalesce(l.total, 0) AS ledger_total,
       coalesce(a.total, 0) AS active_remaining,
       coalesce(m.entries, 0) AS misstated_entries,
       count(*) OVER () AS violations
  FROM credits.balances bal
  FULL JOIN ledger l ON l.user_id = bal.user_id
  FULL JOIN active a ON a.user_id = coalesce(bal.user_id, l.user_id)
  FULL JOIN misstated m ON m.user_id = coalesce(bal.user_id, l.user_id, a.user_id)
 WHERE bal.balance IS DISTINCT FROM coalesce(l.total, 0)
    OR coalesce(l.total, 0) <> coalesce(a.total, 0)
    OR m.entries IS NOT NULL
 ORDER BY 1
 LIMIT %(limit)s
