-- check_schema: whether the credits schema is there, and up to date, for a service that does
-- not apply it itself (CREDITS_APPLY_SCHEMA=false). due_grants is created last, so it stands
-- for the rest; batches_reference_key for this release's change to an existing table.
SELECT to_regprocedure('credits.due_grants(date, text[], date, text, text)') IS NOT NULL
       AND to_regclass('credits.batches_reference_key') IS NOT NULL AS present
