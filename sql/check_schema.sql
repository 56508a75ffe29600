-- check_schema: whether the credits schema is there for a service that does not apply it
-- itself (CREDITS_APPLY_SCHEMA=false). due_grants is created last, so it stands for the rest.
SELECT to_regprocedure('credits.due_grants(date, text[], date, text, text)') IS NOT NULL AS present
