-- find_users: the users whose id starts with a prefix, by id: those with a balance (anyone ever
-- granted) and those with a subscription, for the console's search box.
SELECT u.user_id, max(u.balance) AS balance
  FROM (SELECT b.user_id, b.balance
          FROM credits.balances b
         WHERE starts_with(b.user_id, %(prefix)s)
        UNION ALL
        SELECT s.user_id, NULL
          FROM credits.subscriptions s
         WHERE starts_with(s.user_id, %(prefix)s)) AS u
 GROUP BY u.user_id
 ORDER BY u.user_id
 LIMIT %(limit)s
