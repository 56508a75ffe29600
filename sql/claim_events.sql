-- claim_events: the next events to post, locked for this delivery, oldest first, so a user's
-- events go out in order. The window is the first due pending events that no retry of the
-- same user holds back (a user's events behind one that failed wait for its retry; the
-- retrying events are few, and their index holds nothing else). Of the window's events, one is
-- claimed only when every earlier one of its user in the window is claimed too: an event
-- another delivery holds (SKIP LOCKED) keeps its user's later ones for a later claim. The
-- caller posts a user's events in order and stops at the user's first failure.
WITH retrying AS (
    SELECT coalesce(r.user_id, '') AS user_key, r.id
      FROM credits.events r
     WHERE r.delivered_at IS NULL AND r.given_up_at IS NULL AND r.attempts > 0
),
due AS MATERIALIZED (
    SELECT e.id, coalesce(e.user_id, '') AS user_key
      FROM credits.events e
     WHERE e.delivered_at IS NULL
       AND e.given_up_at IS NULL
       AND e.next_attempt_at <= now()
       AND NOT EXISTS (SELECT FROM retrying r
                        WHERE r.user_key = coalesce(e.user_id, '') AND r.id < e.id)
     ORDER BY e.id
     LIMIT %(limit)s
),
locked AS MATERIALIZED (
    SELECT e.id, e.type, e.user_id, e.payload, e.created_at, e.attempts
      FROM credits.events e
     WHERE e.id = ANY (ARRAY(SELECT d.id FROM due d))
       AND e.delivered_at IS NULL
       AND e.given_up_at IS NULL
       AND e.next_attempt_at <= now()
       FOR UPDATE SKIP LOCKED
)
SELECT l.id, l.type, l.user_id, l.payload, l.created_at, l.attempts
  FROM locked l
 WHERE NOT EXISTS (SELECT FROM due d
                    WHERE d.user_key = coalesce(l.user_id, '')
                      AND d.id < l.id
                      AND d.id <> ALL (ARRAY(SELECT k.id FROM locked k)))
 ORDER BY l.id
