-- 0003_function_files: from this release on, the schema's functions live in sql/functions/,
-- one file by concern, each applied again (after the versioned migrations) whenever its text
-- changes; this table records which text of each file a database has. A function's change is
-- then an edit of its file, not a copy of it in a new migration (docs/DATABASE.md).
CREATE TABLE IF NOT EXISTS credits.schema_functions (
    file       text PRIMARY KEY,    -- its name in sql/functions/, e.g. 40_grants.sql
    sha256     text NOT NULL,       -- of the text applied
    applied_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO credits.schema_migrations (version, name) VALUES (3, 'function_files')
ON CONFLICT (version) DO NOTHING;
