-- check_database: the smallest question the database must answer for the service to be
-- healthy; /healthz asks it on every health check.
SELECT 1 AS answered
