"""What a caller reads back: a run's JSON body, in the documented shape (openapi.yaml).

The routes answer it and the command line prints it, so both say a run the same way.
"""

from typing import Any

from credits.jobs.job import JobRun


def run_body(run: JobRun) -> dict[str, Any]:
    """The JSON body of a JobRun: what it did, and where its pass stands."""
    body: dict[str, Any] = {"success": True}
    if run.dry_run:
        body["dryRun"] = True
    body["jobId"] = str(run.job_id)
    if run.run_date is not None:
        body["date"] = run.run_date.isoformat()
    body["duration"] = run.duration_ms
    body["results"] = run.results
    body["complete"] = run.complete
    if run.totals is not None:
        body["totals"] = run.totals
    return body
