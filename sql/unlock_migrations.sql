-- unlock_migrations: let the next applier of the migrations in (see lock_migrations).
SELECT pg_advisory_unlock(hashtextextended('credits.migrations', 0))
