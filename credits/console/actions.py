"""What an operator may do from the console: grant, reverse a spend, void a one-off grant.

Each calls the same SQL function as any app (credits.ledger) and is recorded in
credits.console_actions before the call (pending) and after it (its result), so every action
is in the audit whatever happens. The ledger entries an action writes carry metadata naming
the operator, the reason and the recorded action. A grant's reference is the form's
idempotency key, so a form sent twice grants once.
"""

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from credits import ledger
from credits.console.operators import Operator
from credits.db import DatabaseUnavailable, Pool, connection, one, queries
from credits.limits import MAX_CREDITS, MAX_VALIDITY_DAYS

MAX_REASON_LENGTH = 500
# A console grant's reference: this prefix and the form's idempotency key (a UUID).
REFERENCE_PREFIX = "console:"
GRANT_SOURCE = "adjustment"
# A console action's ledger metadata: {"operator": name, "reason": text, "console_action": id}.
Metadata = dict[str, Any]


class BadRequest(ValueError):
    """A form field is missing or wrong; nothing was done."""


@dataclass(frozen=True)
class GrantAsked:
    """A grant as the form asks it: checked, not yet done."""

    user_id: str
    amount: int
    reason: str
    validity_days: int | None
    key: uuid.UUID

    @property
    def reference_id(self) -> str:
        """The grant's reference: the same for every submission of one form."""
        return f"{REFERENCE_PREFIX}{self.key}"


@dataclass(frozen=True)
class Outcome:
    """What an action did: done, replayed (done before) or refused, said in a sentence."""

    result: str
    message: str
    answer: dict[str, Any] | None


def grant_asked(user_id: str, form: dict[str, str], key: str | None = None) -> GrantAsked:
    """The grant a form asks for, checked; key: the idempotency key (made new when None)."""
    return GrantAsked(
        user_id=user_id,
        amount=_whole(form.get("amount", ""), "amount", MAX_CREDITS),
        reason=reason(form),
        validity_days=(
            _whole(form["validity_days"], "validity days", MAX_VALIDITY_DAYS)
            if form.get("validity_days", "").strip()
            else None
        ),
        key=_key(key) if key is not None else uuid.uuid4(),
    )


def reason(form: dict[str, str]) -> str:
    """The reason an operator gave, which every action needs."""
    text = form.get("reason", "").strip()
    if not text:
        raise BadRequest("give a reason: it is recorded with the action")
    if len(text) > MAX_REASON_LENGTH:
        raise BadRequest(f"the reason must be at most {MAX_REASON_LENGTH} characters")
    return text


def grant(pool: Pool, operator: Operator, asked: GrantAsked) -> Outcome:
    """Grant the credits, once per form."""

    def call(metadata: Metadata) -> ledger.Answer:
        request = ledger.GrantRequest(
            user_id=asked.user_id,
            amount=asked.amount,
            source=GRANT_SOURCE,
            reference_id=asked.reference_id,
            validity_days=asked.validity_days,
            metadata=metadata,
        )
        return ledger.grant(pool, request)

    params = {"amount": asked.amount, "validity_days": asked.validity_days}
    return _recorded(
        pool,
        operator,
        "grant",
        asked.user_id,
        asked.reference_id,
        asked.reason,
        params,
        call,
        _granted,
    )


def reverse(pool: Pool, operator: Operator, user_id: str, reference_id: str, why: str) -> Outcome:
    """Give a spend's credits back to the batches they came from."""
    return _recorded(
        pool,
        operator,
        "reverse",
        user_id,
        reference_id,
        why,
        {},
        lambda metadata: ledger.reverse(pool, user_id, reference_id, metadata=metadata),
        _reversed,
    )


def void(pool: Pool, operator: Operator, user_id: str, reference_id: str, why: str) -> Outcome:
    """Take back what remains of one of the user's one-off grants."""

    def call(metadata: Metadata) -> ledger.Answer:
        if user_grant(pool, user_id, reference_id) is None:
            raise ledger.UnknownReference(
                f"user {user_id!r} has no grant with reference_id {reference_id!r}"
            )
        return ledger.void(pool, reference_id, metadata=metadata)

    return _recorded(pool, operator, "void", user_id, reference_id, why, {}, call, _voided)


def user_spend(pool: Pool, user_id: str, reference_id: str) -> dict[str, Any]:
    """The user's spend under the reference: credits drawn, when, service, reversed already."""
    with connection(pool) as conn:
        params = {"user_id": user_id, "reference_id": reference_id}
        return dict(one(conn.execute(queries["find_user_spend"], params)))


def user_grant(pool: Pool, user_id: str, reference_id: str) -> dict[str, Any] | None:
    """The user's batch granted under the reference, or None."""
    with connection(pool) as conn:
        params = {"user_id": user_id, "reference_id": reference_id}
        row = conn.execute(queries["find_user_grant"], params).fetchone()
    return None if row is None else dict(row)


def _recorded(
    pool: Pool,
    operator: Operator,
    action: str,
    user_id: str,
    reference_id: str,
    why: str,
    request: dict[str, Any],
    call: Callable[[Metadata], ledger.Answer],
    say: Callable[[ledger.Answer], str],
) -> Outcome:
    """Record the action as pending, call the ledger with the metadata naming the operator,
    the reason and the action, record what it answered."""
    with connection(pool) as conn:
        params = {
            "operator": operator.name,
            "action": action,
            "user_id": user_id,
            "reference_id": reference_id,
            "reason": why,
            "request": Jsonb(request),
        }
        action_id = one(conn.execute(queries["start_console_action"], params))["id"]
    try:
        answer = call({"operator": operator.name, "reason": why, "console_action": action_id})
    except ledger.CreditsError as exc:
        code = next((c for c, kind in ledger.REFUSALS.items() if type(exc) is kind), None)
        refusal = {"code": code, "message": str(exc)}
        outcome = Outcome("refused", f"Refused{f' ({code})' if code else ''}: {exc}", refusal)
    except BaseException:
        with contextlib.suppress(DatabaseUnavailable):
            _finish(pool, action_id, Outcome("failed", "", None))
        raise
    else:
        replayed = bool(answer.get("replayed"))
        prefix = "Already done (this form was sent before; nothing more changed): " * replayed
        outcome = Outcome("replayed" if replayed else "done", prefix + say(answer), answer)
    _finish(pool, action_id, outcome)
    return outcome


def _finish(pool: Pool, action_id: int, outcome: Outcome) -> None:
    """Give the recorded action its result."""
    answer = None if outcome.answer is None else Jsonb(outcome.answer)
    params = {"id": action_id, "result": outcome.result, "answer": answer}
    with connection(pool) as conn:
        conn.execute(queries["finish_console_action"], params)


def _granted(answer: ledger.Answer) -> str:
    return (
        f"Granted {answer['amount']:,} credits to {answer['user_id']}: "
        f"balance {answer['balance']:,}."
    )


def _reversed(answer: ledger.Answer) -> str:
    lapsed = f", {answer['lapsed']:,} lapsed" if answer["lapsed"] else ""
    return (
        f"Reversed spend {answer['reference_id']}: {answer['returned']:,} credits returned"
        f"{lapsed}; balance {answer['balance']:,}."
    )


def _voided(answer: ledger.Answer) -> str:
    return (
        f"Voided grant {answer['reference_id']}: {answer['voided']:,} credits taken back "
        f"({answer['spent']:,} spent, {answer['expired']:,} expired); "
        f"balance {answer['balance']:,}."
    )


def _whole(text: str, name: str, most: int) -> int:
    """A whole number from 1 to most, from a form field."""
    text = text.strip()
    if not (len(text) <= 12 and text.isascii() and text.isdigit() and 1 <= int(text) <= most):
        raise BadRequest(f"{name} must be a whole number from 1 to {most:,}, got {text!r}")
    return int(text)


def _key(text: str) -> uuid.UUID:
    """The form's idempotency key."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise BadRequest("the form's idempotency key is malformed: open the grant again") from None
