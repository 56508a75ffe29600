-- clear_job_pass: forget the job's finished pass for run_date before a new one starts.
DELETE FROM credits.job_progress
 WHERE job = %(job)s AND run_date = %(run_date)s
