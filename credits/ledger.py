"""The credits interface: one-off grants, packs, the sign-up bonus, spending, reversals, voids,
the account and the statement. Each is one call of its SQL function (sql/schema.sql, the
reference in docs/API.md), so Python, the command line and any app share one implementation.
"""

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from credits.db import connection, queries, retry_aborted


class CreditsError(ValueError):
    """A call was refused or its arguments were bad; nothing changed."""


# The name the first spending API gave its errors.
ConsumeError = CreditsError


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
class Consumption:
    """A spend that happened (or had already happened, when replayed)."""

    user_id: str
    amount: int
    reference_id: str
    balance: int
    replayed: bool


def consume(pool, user_id, amount, reference_id, at=None):
    """Spend amount credits of user_id, soonest-expiring batch first, once per reference_id."""
    spent = spend(pool, user_id, reference_id, amount=amount, at=at)
    return Consumption(user_id, amount, reference_id, spent["balance"], spent["replayed"])


def grant(
    pool,
    user_id,
    amount,
    source,
    reference_id,
    validity_days=None,
    expires_at=None,
    metadata=None,
    at=None,
):
    """Grant a one-off batch of amount credits, once per reference_id."""
    _whole(amount, "amount")
    _whole(validity_days, "validity_days", optional=True)
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_grant_credits"],
            {
                "user_id": user_id,
                "amount": amount,
                "source": source,
                "reference_id": reference_id,
                "validity_days": validity_days,
                "expires_at": expires_at,
                "metadata": _json(metadata),
                "at": at,
            },
        ),
        "call_grant_credits",
    )


def buy(pool, user_id, package_id, reference_id, at=None):
    """Grant a credit pack (credits and bonus) for a purchase, once per purchase reference."""
    params = {"user_id": user_id, "package_id": package_id, "reference_id": reference_id}
    return _answer(
        pool,
        lambda conn: conn.execute(queries["call_buy_package"], {**params, "at": at}),
        "call_buy_package",
    )


def can_buy(pool, user_id, package_id):
    """Whether buying the pack now would stay within the balance cap (asked before payment)."""
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_can_buy_package"], {"user_id": user_id, "package_id": package_id}
        ),
        "call_can_buy_package",
    )


def registration_bonus(pool, user_id, at=None):
    """Grant the sign-up bonus, once per user whatever is replayed."""
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_grant_registration_bonus"], {"user_id": user_id, "at": at}
        ),
        "call_grant_registration_bonus",
    )


def spend(
    pool, user_id, reference_id, amount=None, service=None, quantity=1, metadata=None, at=None
):
    """Spend amount credits, or a service's cost times quantity, once per reference_id."""
    if (amount is None) == (service is None):
        raise InvalidArgument("give an amount or a service, not both")
    if service is None:
        _whole(amount, "amount")
        quantity = None
    else:
        _whole(quantity, "quantity")
    params = {
        "user_id": user_id,
        "amount": amount,
        "service": service,
        "quantity": quantity,
        "reference_id": reference_id,
        "metadata": _json(metadata),
        "at": at,
    }
    return _answer(pool, lambda conn: conn.execute(queries["call_spend"], params), "call_spend")


def reverse(pool, user_id, reference_id, at=None):
    """Give a spend's credits back to the batches they came from (see docs/API.md for lapses)."""
    params = {"user_id": user_id, "reference_id": reference_id, "at": at}
    return _answer(
        pool, lambda conn: conn.execute(queries["call_reverse_spend"], params), "call_reverse_spend"
    )


def void(pool, reference_id, at=None):
    """Take back what remains of a one-off grant; what was spent is reported, not clawed back."""
    return _answer(
        pool,
        lambda conn: conn.execute(
            queries["call_void_grant"], {"reference_id": reference_id, "at": at}
        ),
        "call_void_grant",
    )


def account(pool, user_id, eligible_statuses=("active",), at=None):
    """The user's balance, spendable credits, next batch to expire and next subscription grant."""
    params = {"user_id": user_id, "eligible_statuses": list(eligible_statuses), "at": at}
    return _answer(pool, lambda conn: conn.execute(queries["call_account"], params), "call_account")


def statement(pool, user_id, limit=50, before=None):
    """One page of the user's ledger entries, newest first, and the cursor of the next page."""
    _whole(limit, "limit")
    _whole(before, "before", optional=True)
    params = {"user_id": user_id, "limit": limit, "before": before}
    with _refusals(), connection(pool) as conn:
        entries = conn.execute(queries["call_statement"], params).fetchall()
    more = len(entries) == limit
    return {"entries": entries, "next_cursor": entries[-1]["entry_id"] if more else None}


def balance(pool, user_id):
    """The user's balance and active batches, in the order they would be spent."""
    with connection(pool) as conn:
        row = conn.execute(queries["get_balance"], {"user_id": user_id}).fetchone()
        batches = conn.execute(queries["list_active_batches"], {"user_id": user_id}).fetchall()
    return (row["balance"] if row else 0), batches


def find_invariant_violations(pool, limit=100):
    """Users whose balance, ledger total and active remaining disagree: (first rows, count)."""
    with connection(pool) as conn:
        rows = conn.execute(queries["find_invariant_violations"], {"limit": limit}).fetchall()
    return rows, (rows[0]["violations"] if rows else 0)


def _answer(pool, call, what):
    """Run call(conn) in its own transaction (again if the server aborted it); its JSON answer."""

    def once():
        with _refusals(), connection(pool) as conn, conn.transaction():
            return call(conn).fetchone()["answer"]

    return retry_aborted(once, what)


class _refusals:
    """Turn the functions' documented SQLSTATEs into this module's errors."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate or ""
        message = exc.diag.message_primary if state else str(exc)
        if state in REFUSALS:
            raise REFUSALS[state](message) from None
        # Class 22 from the checks; no SQLSTATE: the client refused to send it (a NUL byte).
        if isinstance(exc, psycopg.DataError):
            raise InvalidArgument(message) from None
        return False


def _whole(value, name, optional=False):
    """Refuse what is not a whole number before it is rounded on the way to the database."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number above 0, got {value!r}")


def _json(metadata):
    """Metadata as a JSON parameter (the function checks that it is an object)."""
    return None if metadata is None else Jsonb(metadata)
