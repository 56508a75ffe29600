"""The two daily jobs: grant the month's credits, expire batches past their date.

job.py says what the engine asks of a job; engine.py works a job's passes, stripes.py their
stripes chunk by chunk, budget.py the time a run may take; grant.py and expire.py are the two
jobs; params.py reads a run's parameters and body.py writes what a run did. This module is
what the rest of the service calls.
"""

from credits.jobs.engine import JobAlreadyRunning
from credits.jobs.expire import Expire, ExpireOptions, expire
from credits.jobs.grant import Grant, GrantOptions, grant
from credits.jobs.job import JobRun

__all__ = [
    "Expire",
    "ExpireOptions",
    "Grant",
    "GrantOptions",
    "JobAlreadyRunning",
    "JobRun",
    "expire",
    "grant",
]
