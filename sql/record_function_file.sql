-- record_function_file: a file of sql/functions/ was applied, in the same transaction.
INSERT INTO credits.schema_functions (file, sha256)
VALUES (%(file)s, %(sha256)s)
ON CONFLICT (file) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()
