-- list_migrations: the migrations this database has had (sql/migrations/NNNN_name.sql).
SELECT version, name, applied_at
  FROM credits.schema_migrations
 ORDER BY version
