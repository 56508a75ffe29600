-- event_delivered: the receiver took the event.
UPDATE credits.events
   SET delivered_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL
 WHERE id = %(id)s
