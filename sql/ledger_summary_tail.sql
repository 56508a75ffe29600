-- ledger_summary_tail: how many ledger ids lie past the daily summary, the entries the
-- console's pages would add up live.
SELECT (SELECT coalesce(max(t.id), 0) FROM credits.transactions t) - s.through_id AS tail
  FROM credits.ledger_summary s
