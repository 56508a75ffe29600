-- claim_events: the next events to post, locked for this delivery: each user's oldest pending
-- event when it is due, never a later one while an earlier one waits, so a user's events go
-- out in order. SKIP LOCKED: a concurrent delivery takes other users' events, never the same.
SELECT e.id, e.type, e.user_id, e.payload, e.created_at, e.attempts
  FROM credits.events e
 WHERE e.delivered_at IS NULL
   AND e.given_up_at IS NULL
   AND e.next_attempt_at <= now()
   AND NOT EXISTS (SELECT FROM credits.events p
                    WHERE coalesce(p.user_id, '') = coalesce(e.user_id, '')
                      AND p.id < e.id
                      AND p.delivered_at IS NULL
                      AND p.given_up_at IS NULL)
 ORDER BY e.id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
