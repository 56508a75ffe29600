"""The credits interface: one-off grants, packs, the sign-up bonus, spending, reversals, voids,
the account and the statement. Each is one call of its SQL function (sql/functions/, the
reference in docs/API.md), so Python, the command line and any app share one implementation.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from credits.db import Connection, Pool, connection, one, queries, retry_aborted

# A function's JSON answer (a jsonb object); a row as the pool reads it; a cursor of such rows.
Answer = dict[str, Any]
Row = dict[str, Any]
Cursor = psycopg.Cursor[Row]


class CreditsError(ValueError):
    """A call was refused or its arguments were bad; nothing changed. `detail` holds the
    refusal's numbers when the database gave them (its DETAIL, e.g. spendable and asked)."""

    def __init__(self, message: object, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class InvalidArgument(CreditsError):
    """An argument is missing, malformed or out of range (SQLSTATE class 22)."""


class Refused(CreditsError):
    """A rule refused the call (SQLSTATE CR001-CR008)."""


class InsufficientCredits(Refused):
    """The user has fewer spendable credits than asked for (CR001)."""


class ReferenceReused(Refused):
    """The reference was already used for something else (CR002)."""


class OverBalanceCap(Refused):
    """The pack would take the balance above [limits] max_balance (CR003)."""


class UnknownPackage(Refused):
    """No pack has this id (CR004)."""


class UnknownService(Refused):
    """No service has this name (CR005)."""


class UnknownReference(Refused):
    """No spend (reverse) or grant (void) has this reference (CR006)."""


class NoRegistrationBonus(Refused):
    """The plans file configures no [registration] bonus (CR007)."""


class NotVoidable(Refused):
    """The reference names a subscription's grant, which cannot be voided (CR008)."""


REFUSALS = {
    "CR001": InsufficientCredits,
    "CR002": ReferenceReused,
    "CR003": OverBalanceCap,
    "CR004": UnknownPackage,
    "CR005": UnknownService,
    "CR006": UnknownReference,
    "CR007": NoRegistrationBonus,
    "CR008": NotVoidable,
}


@dataclass(frozen=True)
class GrantRequest:
    """A one-off batch to grant: amount credits under the caller's reference_id."""

    user_id: str
    amount: int
    source: str
    reference_id: str
    validity_days: int | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    at: datetime | None = None


def grant(pool: Pool, request: GrantRequest) -> Answer:
    """Grant a one-off batch of credits, once per reference_id."""
    _whole(request.amount, "amount")
    _whole(request.validity_days, "validity_days", optional=True)
    params = {**asdict(request), "metadata": _json(request.metadata)}
    return _answer(
        pool,
        lambda conn: conn.execute(queries["call_grant_credits"], params),
        "call_grant_credits",
    )


def buy(
    pool: Pool, user_id: str, package_id: str, reference_id: str, at: datetime | None = None
) -> Answer:
    """Grant a credit pack (credits and bonus) for a purchase, once per purchase reference."""
    params = {"user_id": user_id, "package_id": package_id, "reference_id": reference_id}
    return _answer(
        pool,
        lambda conn: conn.execute(queries["call_buy_package"], {**params, "at": at}),
        "call_buy_package",
    )


def can_buy(pool: Pool, user_id: str, package_id: str) -> Answer:
    """Whether buying the pack now would stay within the balance cap (asked before payment)."""
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_can_buy_package"], {"user_id": user_id, "package_id": package_id}
        ),
        "call_can_buy_package",
    )


def registration_bonus(pool: Pool, user_id: str, at: datetime | None = None) -> Answer:
    """Grant the sign-up bonus, once per user whatever is replayed."""
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_grant_registration_bonus"], {"user_id": user_id, "at": at}
        ),
        "call_grant_registration_bonus",
    )


@dataclass(frozen=True)
class SpendRequest:
    """A spend: amount credits, or a service's cost times quantity, under reference_id."""

    user_id: str
    reference_id: str
    amount: int | None = None
    service: str | None = None
    quantity: int | None = 1
    metadata: dict[str, Any] | None = None
    at: datetime | None = None


def spend(pool: Pool, request: SpendRequest) -> Answer:
    """Spend amount credits, or a service's cost times quantity, once per reference_id."""
    if (request.amount is None) == (request.service is None):
        raise InvalidArgument("give an amount or a service, not both")
    quantity = request.quantity
    if request.service is None:
        _whole(request.amount, "amount")
        quantity = None
    else:
        _whole(quantity, "quantity")
    params = {**asdict(request), "quantity": quantity, "metadata": _json(request.metadata)}
    return _answer(pool, lambda conn: conn.execute(queries["call_spend"], params), "call_spend")


def reverse(
    pool: Pool,
    user_id: str,
    reference_id: str,
    at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> Answer:
    """Give a spend's credits back to the batches they came from (see docs/API.md for lapses)."""
    params = {
        "user_id": user_id,
        "reference_id": reference_id,
        "at": at,
        "metadata": _json(metadata),
    }
    return _answer(
        pool, lambda conn: conn.execute(queries["call_reverse_spend"], params), "call_reverse_spend"
    )


def void(
    pool: Pool,
    reference_id: str,
    at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> Answer:
    """Take back what remains of a one-off grant; what was spent is reported, not clawed back."""
    params = {"reference_id": reference_id, "at": at, "metadata": _json(metadata)}
    return _answer(
        pool, lambda conn: conn.execute(queries["call_void_grant"], params), "call_void_grant"
    )


def account(
    pool: Pool,
    user_id: str,
    eligible_statuses: Iterable[str] = ("active",),
    at: datetime | None = None,
) -> Answer:
    """The user's balance, spendable credits, next batch to expire and next subscription grant."""
    params = {"user_id": user_id, "eligible_statuses": list(eligible_statuses), "at": at}
    return _answer(pool, lambda conn: conn.execute(queries["call_account"], params), "call_account")


def statement(
    pool: Pool, user_id: str, limit: int = 50, before: int | None = None
) -> dict[str, Any]:
    """One page of the user's ledger entries, newest first, and the cursor of the next page."""
    _whole(limit, "limit")
    _whole(before, "before", optional=True)
    params = {"user_id": user_id, "limit": limit, "before": before}
    with _refusals(), connection(pool) as conn:
        entries = conn.execute(queries["call_statement"], params).fetchall()
    more = len(entries) == limit
    return {"entries": entries, "next_cursor": entries[-1]["entry_id"] if more else None}


def balance(pool: Pool, user_id: str) -> tuple[int, list[Row]]:
    """The user's balance and active batches, in the order they would be spent."""
    with connection(pool) as conn:
        row = conn.execute(queries["get_balance"], {"user_id": user_id}).fetchone()
        batches = conn.execute(queries["list_active_batches"], {"user_id": user_id}).fetchall()
    return (row["balance"] if row else 0), batches


def find_invariant_violations(pool: Pool, limit: int = 100) -> tuple[list[Row], int]:
    """Users whose balance, ledger total and active remaining disagree: (first rows, count)."""
    with connection(pool) as conn:
        rows = conn.execute(queries["find_invariant_violations"], {"limit": limit}).fetchall()
    return rows, (rows[0]["violations"] if rows else 0)


def _answer(pool: Pool, call: Callable[[Connection], Cursor], what: str) -> Answer:
    """Run call(conn) in its own transaction (again if the server aborted it); its JSON answer."""

    def once() -> Answer:
        with _refusals(), connection(pool) as conn, conn.transaction():
            answer: Answer = one(call(conn))["answer"]
            return answer

    return retry_aborted(once, what)


class _refusals:
    """Turn the functions' documented SQLSTATEs into this module's errors."""

    def __enter__(self) -> "_refusals":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate or ""
        message = exc.diag.message_primary if state else str(exc)
        if state in REFUSALS:
            raise REFUSALS[state](message, _detail(exc.diag.message_detail)) from None
        # Class 22 from the checks; no SQLSTATE: the client refused to send it (a NUL byte).
        if isinstance(exc, psycopg.DataError):
            raise InvalidArgument(message) from None
        return False


def _detail(text: str | None) -> dict[str, Any] | None:
    """A refusal's DETAIL, a JSON object of its numbers; None when it has none."""
    try:
        detail = json.loads(text or "null")
    except ValueError:
        return None
    return detail if isinstance(detail, dict) else None


def _whole(value: object, name: str, optional: bool = False) -> None:
    """Refuse what is not a whole number before it is rounded on the way to the database."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number above 0, got {value!r}")


def _json(metadata: dict[str, Any] | None) -> Jsonb | None:
    """Metadata as a JSON parameter (the function checks that it is an object)."""
    return None if metadata is None else Jsonb(metadata)
