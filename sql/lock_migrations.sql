-- lock_migrations: one applier of the migrations at a time (a session lock: each migration
-- is its own transaction). Services starting at once wait here, then find nothing pending.
SELECT pg_advisory_lock(hashtextextended('credits.migrations', 0))
