-- count_pending_events: events not yet delivered nor given up.
SELECT count(*) AS pending
  FROM credits.events
 WHERE delivered_at IS NULL AND given_up_at IS NULL
