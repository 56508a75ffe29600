-- 0005_console_records: the subscriptions a grant run could not grant, and why, for the
-- console's page of the run (docs/CONSOLE.md); safe to run again. The service role's rights
-- are in sql/roles.sql (run it again after this migration).

-- Written by the chunk that met them (credits.due_grants' failure), in its transaction. A
-- chunk adds none once its run holds 1,000 and at most the places left, so a run keeps its
-- first 1,000, or up to 1,000 a stripe when its stripes (CREDITS_PARALLEL_CHUNKS) meet
-- failures at once; the run's results count them all. Ids are cut to 200 characters.
CREATE TABLE IF NOT EXISTS credits.job_run_failures (
    run_id          uuid NOT NULL REFERENCES credits.job_runs (id) ON DELETE CASCADE,
    subscription_id text NOT NULL,
    grant_period    text NOT NULL,  -- the month it was due, 2026-03
    user_id         text NULL,
    reason          text NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, subscription_id, grant_period)
);

INSERT INTO credits.schema_migrations (version, name) VALUES (5, 'console_records')
ON CONFLICT (version) DO NOTHING;
