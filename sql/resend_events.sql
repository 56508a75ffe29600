-- resend_events: put given-up events back in the queue as new, the ones named or all of them.
UPDATE credits.events
   SET given_up_at = NULL, attempts = 0, next_attempt_at = now(), last_error = NULL
 WHERE given_up_at IS NOT NULL
   AND (%(ids)s::bigint[] IS NULL OR id = ANY (%(ids)s::bigint[]))
RETURNING id
