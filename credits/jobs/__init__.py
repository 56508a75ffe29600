"""The two daily jobs: grant the month's credits, expire batches past their date.

job.py says what the engine asks of a job; engine.py works a job's passes in stripes and
chunks; grant.py and expire.py are the two jobs. This module is what the rest of the service
calls.
"""

from credits.jobs.engine import JobAlreadyRunning
from credits.jobs.expire import Expire, expire
from credits.jobs.grant import Grant, grant
from credits.jobs.job import JobRun

# The two jobs, by the names the rest of the service knows them (their names, counts, order).
GRANT = Grant
EXPIRE = Expire

__all__ = [
    "EXPIRE",
    "GRANT",
    "JobAlreadyRunning",
    "JobRun",
    "expire",
    "grant",
]
