"""Spending credits, and reading balances and the ledger's invariant."""

from dataclasses import dataclass

from credits.db import connection, queries, retry_aborted


class ConsumeError(ValueError):
    """A spend was refused; nothing changed."""


class InsufficientCredits(ConsumeError):
    """The user has fewer spendable credits than asked for."""


class ReferenceReused(ConsumeError):
    """The reference_id was already used by this user for a different amount."""


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
    if not user_id:
        raise ConsumeError("user_id must not be empty")
    if not reference_id:
        raise ConsumeError("reference_id must not be empty")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ConsumeError(f"amount must be a whole number above 0, got {amount!r}")
    params = {"user_id": user_id, "amount": amount, "reference_id": reference_id, "at": at}
    return retry_aborted(
        lambda: _consume_once(pool, params), f"Spend {reference_id!r} of user {user_id!r}"
    )


def _consume_once(pool, params):
    """One try at a spend, in one transaction."""
    user_id, amount, reference_id = params["user_id"], params["amount"], params["reference_id"]
    with connection(pool) as conn, conn.transaction():
        locked = conn.execute(queries["lock_balance"], params).fetchone()
        earlier = conn.execute(queries["find_consumption"], params).fetchone()["amount"]
        if earlier is not None:
            if earlier != amount:
                raise ReferenceReused(
                    f"reference_id {reference_id!r} already spent {earlier} credits of user "
                    f"{user_id!r}, not {amount}"
                )
            return Consumption(user_id, amount, reference_id, locked["balance"], replayed=True)
        row = conn.execute(queries["consume_batches"], params).fetchone()
        if row["balance"] is None:
            raise InsufficientCredits(
                f"user {user_id!r} has {row['available']} spendable credits, {amount} asked for"
            )
        return Consumption(user_id, amount, reference_id, row["balance"], replayed=False)


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
