-- check_schema: whether this database records its migrations (credits.schema_migrations,
-- made by the first) and its function files (credits.schema_functions, made by 0003) where
-- this role can read them; which ones it has had is
-- list_migrations. A service that does not apply the schema (CREDITS_APPLY_SCHEMA=false)
-- refuses to start until every file of sql/migrations has been applied.
SELECT coalesce(has_table_privilege(to_regclass('credits.schema_migrations'), 'SELECT'), false)
       AS present,
       coalesce(has_table_privilege(to_regclass('credits.schema_functions'), 'SELECT'), false)
       AS functions_present
