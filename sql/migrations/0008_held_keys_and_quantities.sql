-- 0008_held_keys_and_quantities: a job's chunk no longer waits for a user an app transaction
-- holds: it skips that user's keys (FOR UPDATE SKIP LOCKED) and its stripe keeps them here,
-- to try again once its walk is done, in that call or the next. A stripe is complete when it
-- is walked and holds no key.
ALTER TABLE credits.job_progress
    ADD COLUMN IF NOT EXISTS walked boolean NOT NULL DEFAULT false,   -- its range is walked
    ADD COLUMN IF NOT EXISTS held_keys text[] NOT NULL DEFAULT '{}',  -- skipped, to try again
    ADD COLUMN IF NOT EXISTS held_after text NULL;  -- below every held key; NULL: the first key on

-- A pass finished before this release was walked.
UPDATE credits.job_progress SET walked = true WHERE complete AND NOT walked;

-- A spend of a service keeps its quantity on its entries: a replay asks the same service and
-- quantity, whatever the service costs by then (NULL: a spend by amount, or written before).
ALTER TABLE credits.transactions ADD COLUMN IF NOT EXISTS quantity integer NULL;

INSERT INTO credits.schema_migrations (version, name) VALUES (8, 'held_keys_and_quantities')
ON CONFLICT (version) DO NOTHING;
