"""The operators' command line: `python -m credits COMMAND`.

base.py holds the group and what every command shares; operations.py the schema, plans, jobs
and checks; accounts.py the credits calls; deprecated.py the old names kept for scripts.
"""

from credits.cli import accounts, deprecated, operations
from credits.cli.base import cli

__all__ = ["accounts", "cli", "deprecated", "operations"]
