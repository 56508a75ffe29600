-- prune_events: delete events past the retention, oldest first, a bounded number a call:
-- delivered ones, or every one when nothing delivers them (the host reads the outbox itself).
DELETE FROM credits.events
 WHERE id = ANY (ARRAY(SELECT id FROM credits.events
                        WHERE created_at < now() - make_interval(days => %(days)s)
                          AND (delivered_at IS NOT NULL OR NOT %(delivering)s)
                        ORDER BY created_at
                        LIMIT %(limit)s))
