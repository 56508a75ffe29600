-- record_sign_in_failure: note a failed console sign-in, and delete those older than an hour,
-- far past the window they are counted in, so the table stays small.
WITH expired AS (
    DELETE FROM credits.console_sign_in_failures f
     WHERE f.failed_at < now() - interval '1 hour'
)
INSERT INTO credits.console_sign_in_failures (name, address)
VALUES (%(name)s, %(address)s)
