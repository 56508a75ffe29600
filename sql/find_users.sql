-- find_users: the first users, by id, whose id starts with a prefix: those with a balance
-- (anyone ever granted) and those with a subscription, for the console's search box. Ids in
-- byte order ("C"), so the prefix is an index range (migration 0006) and a short prefix reads
-- only the first %(limit)s of each table.
WITH found AS (
    (SELECT b.user_id COLLATE "C" AS user_id, b.balance
       FROM credits.balances b
      WHERE starts_with(b.user_id COLLATE "C", %(prefix)s)
      ORDER BY 1
      LIMIT %(limit)s)
    UNION ALL
    (SELECT DISTINCT s.user_id COLLATE "C", NULL::bigint
       FROM credits.subscriptions s
      WHERE starts_with(s.user_id COLLATE "C", %(prefix)s) AND octet_length(s.user_id) <= 800
      ORDER BY 1
      LIMIT %(limit)s)
)
SELECT f.user_id, max(f.balance) AS balance
  FROM found f
 GROUP BY f.user_id
 ORDER BY f.user_id
 LIMIT %(limit)s
