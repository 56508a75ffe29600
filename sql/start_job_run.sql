-- start_job_run: record that a run has begun. It commits on its own, before the run's work,
-- so that a run that fails or is rolled back still leaves a row to say so.
INSERT INTO credits.job_runs (id, job, status, run_date)
VALUES (%(job_id)s, %(job)s, 'running', %(run_date)s)
