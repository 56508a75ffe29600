"""The ledger's daily summary (credits.ledger_days), brought up to date a chunk at a time.

The console's Overview and Finance add up the summary and the entries not in it yet (the tail,
read by id), never the whole ledger. The jobs fold the tail after each run; the console folds
it when it has grown past TAIL_LIMIT entries, for at most PAGE_FOLD_SECONDS a request
(docs/PERFORMANCE.md, The console at scale).
"""

import logging
import time

import psycopg

from credits.db import Connection, queries

logger = logging.getLogger("credits")

CHUNK = 100_000  # entries folded per transaction: about 0.3 s at 1M users (PERFORMANCE.md)
TAIL_LIMIT = 20_000  # entries a page may add up live before it folds them first
PAGE_FOLD_SECONDS = 1.0  # what one page spends folding at most (a long tail after an upgrade)


def catch_up(conn: Connection, deadline: float | None = None) -> int:
    """Fold the committed entries not in the summary into it; answers how many ids it passed.

    No chunk is started that would likely end past deadline (time.monotonic()); None: no limit.
    conn must be in autocommit: the mark's lock on the ledger lasts until its commit.
    """
    try:
        conn.execute(queries["mark_ledger_summary"])
    except psycopg.errors.LockNotAvailable:
        # Writers held the ledger past the mark's wait: fold as far as an earlier mark allows.
        logger.info("Ledger summary: the ledger was busy; folding up to the last mark")
    folded, took = 0, 0.0
    while deadline is None or time.monotonic() + took <= deadline:
        started = time.monotonic()
        step = conn.execute(queries["summarise_ledger"], {"max_entries": CHUNK}).fetchone()
        took = time.monotonic() - started
        if not step or not step["folded"]:
            break
        folded += step["folded"]
    return int(folded)


def tail_length(conn: Connection) -> int:
    """How many ledger ids lie past the summary (an upper bound on the entries to add up)."""
    row = conn.execute(queries["ledger_summary_tail"]).fetchone()
    return int(row["tail"]) if row else 0


def fresh(conn: Connection) -> None:
    """Fold the tail first if it has grown past what a page should add up live."""
    if tail_length(conn) > TAIL_LIMIT:
        catch_up(conn, time.monotonic() + PAGE_FOLD_SECONDS)
