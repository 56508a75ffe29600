-- notify_events: tell the listeners of credits_events, when the transaction commits, that
-- events up to the latest, this transaction's among them, were written.
SELECT pg_notify('credits_events', max(id)::text) FROM credits.events
