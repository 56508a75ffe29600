-- notify_events: tell the listeners of credits_events, when the transaction commits, that
-- events up to this id were written.
SELECT pg_notify('credits_events', %(last_id)s::text)
