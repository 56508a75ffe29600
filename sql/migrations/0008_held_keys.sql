-- 0008_held_keys: a job's chunk no longer waits for a user an app transaction holds: it skips
-- that user's keys (FOR UPDATE SKIP LOCKED) and its stripe keeps them here, to try again once
-- its walk is done, in that call or the next. A stripe is complete when it is walked and
-- holds no key.
ALTER TABLE credits.job_progress
    ADD COLUMN IF NOT EXISTS walked boolean NOT NULL DEFAULT false,   -- its range is walked
    ADD COLUMN IF NOT EXISTS held_keys text[] NOT NULL DEFAULT '{}',  -- skipped, to try again
    ADD COLUMN IF NOT EXISTS held_after text NULL;  -- below every held key; NULL: the first key on

-- A pass finished before this release was walked.
UPDATE credits.job_progress SET walked = true WHERE complete AND NOT walked;

INSERT INTO credits.schema_migrations (version, name) VALUES (8, 'held_keys')
ON CONFLICT (version) DO NOTHING;
