"""The events outbox: delivered as Standard Webhooks, pruned after the retention, announced.

The SQL writes the events with each change (sql/functions/70_events.sql); this module posts
them, signed by the `standardwebhooks` library, each user's in order, at least once, and
tries a failed one again later (docs/EVENTS.md). A delivery is a budgeted call, like a job's.
"""

import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from standardwebhooks.webhooks import Webhook

from credits.config import Settings
from credits.db import Connection, Pool, connection, one, queries
from credits.jobs.budget import Budget, elapsed_ms

logger = logging.getLogger("credits")

# Seconds a receiver has to answer one event.
TIMEOUT = 10
# Attempts before an event is given up (about 40 hours of back-off: a receiver down for a day
# loses nothing).
MAX_ATTEMPTS = 48
# Events locked and posted per transaction.
CLAIM = 50
# Failures in a row after which a call stops: the receiver is down, the rest wait for later.
FAILURES_IN_A_ROW = 3
# Events deleted per call by the retention, so a backlog is pruned over several calls.
PRUNE = 50_000
# A delivery run's counts, in the order the deliver route answers them (credits/monitor.py).
RESULTS = ("delivered", "failed", "givenUp", "deleted", "pending")


@dataclass
class Delivery:
    """What one delivery call did."""

    delivered: int = 0
    failed: int = 0
    given_up: int = 0
    deleted: int = 0
    pending: int = 0
    complete: bool = False  # no event was due when the call stopped
    last_error: str | None = None
    duration_ms: int = 0

    @property
    def status(self) -> str:
        """The run's status: failed when attempts failed and none was taken, else succeeded
        when no event was due at the end, else partial (the next call goes on)."""
        if self.failed and not self.delivered:
            return "failed"
        return "succeeded" if self.complete else "partial"

    def results(self) -> dict[str, Any]:
        """The counts, in RESULTS' order."""
        counts = (self.delivered, self.failed, self.given_up, self.deleted, self.pending)
        return dict(zip(RESULTS, counts, strict=True))

    def body(self) -> dict[str, Any]:
        """The call's JSON body, in the shape of the jobs' (docs/EVENTS.md)."""
        results = self.results()
        return {
            "success": True,
            "duration": self.duration_ms,
            "results": results,
            "complete": self.complete,
            "lastError": self.last_error,
        }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the body is never re-posted elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def post(url: str, secret: str, event: dict[str, Any], timeout: float) -> str | None:
    """POST one event, signed; None when the receiver took it (2xx), else why not."""
    message_id = f"evt_{event['id']}"
    body = json.dumps(
        {
            "type": event["type"],
            "timestamp": event["created_at"].isoformat(),
            "data": event["payload"],
        },
        separators=(",", ":"),
    ).encode()
    now = datetime.now(timezone.utc)
    headers = {
        "content-type": "application/json",
        "user-agent": "credits-webhooks",
        "webhook-id": message_id,  # the same on every attempt: the receiver de-duplicates by it
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return f"unreachable: {exc.reason}"
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        # HTTPException: an answer that is not HTTP (a bad status line, a body cut short).
        return f"no answer: {exc}" if str(exc) else f"no answer: {type(exc).__name__}"


def deliver(pool: Pool, settings: Settings, budget: float | None) -> Delivery:
    """Prune past the retention, then post due events until none is left or the budget is spent."""
    clock = Budget(budget)
    done = Delivery()
    with connection(pool) as conn:
        deliver_on(conn, settings, clock, done)
    log_delivery(done)
    return done


def deliver_on(conn: Connection, settings: Settings, clock: Budget, done: Delivery) -> None:
    """deliver()'s work on conn, told in done (a delivery run's too: credits/delivery_runs.py)."""
    with clock.transaction(conn):
        delivering = settings.webhook_url is not None
        done.deleted = conn.execute(
            queries["prune_events"],
            {"days": settings.events_retention_days, "delivering": delivering, "limit": PRUNE},
        ).rowcount
    if settings.webhook_url is None or settings.webhook_secret is None:
        done.complete = True
    else:
        _post_due(conn, settings.webhook_url, settings.webhook_secret, clock, done)
        if done.last_error:
            done.last_error = f"{done.last_error} from {_receiver(settings.webhook_url)}"
    done.pending = one(conn.execute(queries["count_pending_events"]))["pending"]
    done.duration_ms = clock.elapsed_ms()


def _receiver(url: str) -> str:
    """The receiver's URL as an error names it: no user, password, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def log_delivery(done: Delivery) -> None:
    """The call's log line: its counts, and the receiver's last error."""
    logger.log(
        logging.WARNING if done.last_error else logging.INFO,
        "[Credits Deliver] Delivered %d, failed %d, given up %d, deleted %d, pending %d%s",
        done.delivered,
        done.failed,
        done.given_up,
        done.deleted,
        done.pending,
        f"; last error: {done.last_error}" if done.last_error else "",
        extra={"event": "delivered", "results": done.results()},
    )


def _post_due(conn: Connection, url: str, secret: str, clock: Budget, done: Delivery) -> None:
    """Post claimed events transaction by transaction until none is due, the budget is spent
    or the receiver failed FAILURES_IN_A_ROW times."""
    in_a_row = 0
    while not clock.spent():
        started = time.monotonic()
        with clock.transaction(conn):
            events = conn.execute(queries["claim_events"], {"limit": CLAIM}).fetchall()
            if not events:
                done.complete = True
                return
            held: set[str | None] = set()  # users whose event failed in this claim
            for event in events:
                left = _seconds_left(clock)
                if left is not None and left < 1 or in_a_row >= FAILURES_IN_A_ROW:
                    return  # the events not posted are unlocked, untouched, when this commits
                if event["user_id"] in held:
                    continue  # behind its user's failed event, untouched: it waits for the retry
                error = post(url, secret, event, min(TIMEOUT, left or TIMEOUT))
                in_a_row = _record(conn, event, error, done, in_a_row)
                if error is not None:
                    held.add(event["user_id"])
        clock.chunk_took(time.monotonic() - started)
        if in_a_row >= FAILURES_IN_A_ROW:
            return


def _record(
    conn: Connection, event: dict[str, Any], error: str | None, done: Delivery, in_a_row: int
) -> int:
    """Mark the event delivered or failed; answers the failures in a row now."""
    if error is None:
        conn.execute(queries["event_delivered"], {"id": event["id"]})
        done.delivered += 1
        return 0
    row = one(
        conn.execute(
            queries["event_failed"],
            {"id": event["id"], "error": error, "max_attempts": MAX_ATTEMPTS},
        )
    )
    done.failed += 1
    done.given_up += row["given_up"]
    done.last_error = f"event {event['id']}: {error}"
    return in_a_row + 1


def _seconds_left(clock: Budget) -> float | None:
    """Seconds left of the budget, or None without one."""
    if clock.seconds is None:
        return None
    return clock.seconds - elapsed_ms(clock.started) / 1000


def notice_expiring(conn: Connection, cutoff: datetime | None) -> int:
    """Write credits.expiring_soon for the batches lapsing soon after cutoff (None: now), in the
    caller's transaction."""
    conn.execute(queries["lock_expiring_notices"])
    conn.execute(queries["set_run_limits"], {"lock_timeout": None})  # planned with its reach
    reach = conn.execute(queries["read_notice_horizon"], {"cutoff": cutoff}).fetchone()
    if reach is None:
        return 0  # no [notifications] expiring_days
    noticed = conn.execute(queries["notice_expiring_batches"], reach).rowcount
    if noticed:
        conn.execute(queries["notify_events"])
    return noticed


def resend(pool: Pool, ids: list[int] | None) -> list[int]:
    """Put given-up events back in the queue (the ids named, or all); answers their ids."""
    with connection(pool) as conn, conn.transaction():
        rows = conn.execute(queries["resend_events"], {"ids": ids}).fetchall()
    return sorted(row["id"] for row in rows)


def list_events(pool: Pool, state: str, after_id: int, limit: int) -> list[dict[str, Any]]:
    """The outbox's events after after_id: all, pending or given-up ones."""
    with connection(pool) as conn:
        params = {"state": state, "after_id": after_id, "limit": limit}
        return conn.execute(queries["list_events"], params).fetchall()
