-- 0009_deliver_runs: each call of the deliver route and of the CLI's `deliver` is a run of
-- job 'deliver' in credits.job_runs, so a receiver refusing every event (a wrong secret) shows
-- on the console's Runs page, in `runs` and in /metrics (docs/EVENTS.md, Delivery runs).
-- job_progress keeps its check: a delivery has no pass.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'job_runs_job_check'
                      AND conrelid = 'credits.job_runs'::regclass
                      AND pg_get_constraintdef(oid) LIKE '%deliver%') THEN
        ALTER TABLE credits.job_runs DROP CONSTRAINT IF EXISTS job_runs_job_check;
        ALTER TABLE credits.job_runs ADD CONSTRAINT job_runs_job_check
            CHECK (job IN ('grant', 'expire', 'deliver'));
    END IF;
END
$$;

INSERT INTO credits.schema_migrations (version, name) VALUES (9, 'deliver_runs')
ON CONFLICT (version) DO NOTHING;
