-- user_at: the user_id at a position of the users in user_id order, where an expire pass
-- splits its keys into stripes.
SELECT user_id AS key
  FROM credits.balances
 ORDER BY user_id
OFFSET %(position)s
 LIMIT 1
