-- event_failed: the receiver refused the event or did not answer: try again after a delay
-- that doubles with each attempt (10 s, 20 s, ... at most an hour), and give it up after
-- max_attempts (its user's later events then go on; `events resend` puts it back).
UPDATE credits.events
   SET attempts = attempts + 1,
       last_error = %(error)s,
       next_attempt_at = clock_timestamp()
                         + make_interval(secs => least(3600, 10 * 2 ^ least(attempts, 20))),
       given_up_at = CASE WHEN attempts + 1 >= %(max_attempts)s THEN clock_timestamp() END
 WHERE id = %(id)s
RETURNING given_up_at IS NOT NULL AS given_up
