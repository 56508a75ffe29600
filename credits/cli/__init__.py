"""The operators' command line: `python -m credits COMMAND`.

base.py holds the group and what every command shares; operations.py the schema, plans, jobs
and checks; accounts.py the credits calls; events.py the events outbox; deprecated.py the old
names kept for scripts.
"""

from credits.cli import accounts, deprecated, events, operations
from credits.cli.base import cli
from credits.console.cli import operator

cli.add_command(operator)  # the console's operators (credits/console/cli.py)

__all__ = ["accounts", "cli", "deprecated", "events", "operations"]
