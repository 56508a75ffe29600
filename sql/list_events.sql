-- list_events: the outbox as operators see it, after an id, oldest first: every event, the
-- pending ones, or the given-up ones.
SELECT id, type, user_id, payload, created_at, delivered_at, attempts, next_attempt_at,
       last_error, given_up_at
  FROM credits.events
 WHERE id > %(after_id)s
   AND CASE %(state)s
       WHEN 'pending' THEN delivered_at IS NULL AND given_up_at IS NULL
       WHEN 'given-up' THEN given_up_at IS NOT NULL
       ELSE true
       END
 ORDER BY id
 LIMIT %(limit)s
