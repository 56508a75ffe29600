-- subscription_at: the id at a position of the subscriptions in id order, where a grant
-- pass splits its keys into stripes.
SELECT id AS key
  FROM credits.subscriptions
 ORDER BY id
OFFSET %(position)s
 LIMIT 1
