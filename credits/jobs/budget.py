"""A run's time budget: when to stop starting chunks, and how long its transactions may wait."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from credits.db import Connection, queries


class Budget:
    """A run's time budget: no chunk is started that would likely end past it."""

    def __init__(self, seconds: float | None) -> None:
        self.started = time.monotonic()
        self.seconds = seconds
        self.last_chunk: float | None = None  # seconds; None until the run's first chunk is done

    def spent(self) -> bool:
        """True when the next chunk would likely end past the budget."""
        # A run always does one chunk, so that even the smallest budget makes progress.
        if self.seconds is None or self.last_chunk is None:
            return False
        return time.monotonic() - self.started + self.last_chunk > self.seconds

    def chunk_took(self, seconds: float) -> None:
        """Remember how long the last chunk took, the estimate for the next one."""
        self.last_chunk = seconds

    def elapsed_ms(self) -> int:
        """Milliseconds since the run started."""
        return elapsed_ms(self.started)

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[None]:
        """A run's transaction: each statement planned with its values, no JIT, and no statement
        waits for a lock past the budget's end."""
        with conn.transaction():
            lock_timeout = None
            if self.seconds is not None:
                left = self.seconds - (time.monotonic() - self.started)
                # At least 1 ms: a lock_timeout of 0 means no limit at all.
                lock_timeout = f"{max(1, left * 1000):.0f}ms"
            conn.execute(queries["set_run_limits"], {"lock_timeout": lock_timeout})
            yield


def elapsed_ms(started: float) -> int:
    """Milliseconds since a time.monotonic() reading."""
    return round((time.monotonic() - started) * 1000)
