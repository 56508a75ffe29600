"""The rules of credits as a small pure-Python model: the executable statement of them.

tests/test_model.py applies the same random steps to this model and to the service on a real
database, and after every step they must agree.
"""

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone


def midnight(day):
    """00:00 UTC of a date."""
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def due_day(started_at, year, month):
    """The UTC day of month the subscription started on, clamped to the month's last day."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(started_at.astimezone(timezone.utc).day, last))


@dataclass
class Subscription:
    user_id: str
    plan_id: str
    started_at: datetime
    status: str = "active"
    ends_at: datetime | None = None


@dataclass
class Batch:
    user_id: str
    reference_id: str
    amount: int
    expires_at: datetime | None
    remaining: int = 0
    status: str = "active"
    id: int = 0  # the database's id: creation order, the tie-break when spending
    source: str = "subscription"

    def __post_init__(self):
        self.remaining = self.amount


@dataclass
class Credits:
    """Plans, subscriptions, batches and the ledger, changed only by the rules below."""

    eligible_statuses: tuple = ("active",)
    catch_up_days: int = 7
    last_pass: date | None = None  # the latest run date of a completed grant
    plans: dict = field(default_factory=dict)  # plan_id -> (monthly_credits, validity_days)
    subscriptions: dict = field(default_factory=dict)  # id -> Subscription
    batches: dict = field(default_factory=dict)  # reference_id -> Batch
    ledger: list = field(default_factory=list)  # (user_id, type, amount, batch ref, reference)
    spent: dict = field(default_factory=dict)  # (user_id, reference) -> (service, quantity) asked

    def catch_up_from(self, run_date):
        """The first due day before run_date's month a grant covers, or None (its month only).

        The day after the last completed grant, at most catch_up_days before run_date; None
        when no grant was completed before, or the last one was on or after run_date.
        """
        if self.last_pass is None or self.last_pass >= run_date:
            return None
        return max(self.last_pass + timedelta(1), run_date - timedelta(self.catch_up_days))

    def due(self, run_date):
        """Each grant due by run_date: (id, subscription, due day).

        In run_date's month up to run_date, and in the month before from catch_up_from on,
        when the subscription's status is eligible, it started on or before its due day, and
        it had not ended by then.
        """
        catch_up_from = self.catch_up_from(run_date)
        own = run_date.replace(day=1)
        before = (own - timedelta(1)).replace(day=1)
        for sub_id, sub in sorted(self.subscriptions.items()):
            for month in (before, own):
                day = due_day(sub.started_at, month.year, month.month)
                if (
                    (month == own or (catch_up_from is not None and day >= catch_up_from))
                    and sub.status in self.eligible_statuses
                    and sub.started_at.astimezone(timezone.utc).date() <= day <= run_date
                    and (sub.ends_at is None or sub.ends_at > midnight(day))
                ):
                    yield sub_id, sub, day

    def grant(self, run_date, dry_run=False):
        """Once per subscription and month: the plan's credits, expiring validity days on."""
        results = {"processed": 0, "successful": 0, "skipped": 0, "failed": 0}
        for sub_id, sub, day in self.due(run_date):
            results["processed"] += 1
            reference_id = f"subscription:{sub_id}:{day:%Y-%m}"
            if reference_id in self.batches:
                results["skipped"] += 1
            elif sub.plan_id not in self.plans:
                results["failed"] += 1
            else:
                results["successful"] += 1
                if not dry_run:
                    credits, validity_days = self.plans[sub.plan_id]
                    expires_at = midnight(day + timedelta(validity_days)) if validity_days else None
                    batch = Batch(sub.user_id, reference_id, credits, expires_at)
                    self.batches[reference_id] = batch
                    self.ledger.append((sub.user_id, "grant", credits, reference_id, reference_id))
        if not dry_run:
            self.last_pass = max(self.last_pass or run_date, run_date)
        return results

    def consume(self, user_id, amount, reference_id, at, service=None, quantity=None):
        """Soonest-expiring first, never-expiring last; all or nothing; once per reference. A
        replay asks what the first call asked: the same amount, or the same service and
        quantity (a service's spend of `amount`, its cost times quantity)."""
        earlier = -sum(
            e[2] for e in self.ledger if e[:2] == (user_id, "consume") and e[4] == reference_id
        )
        if earlier:
            asked = self.spent[(user_id, reference_id)]
            same = asked == (service, quantity) if service else asked[0] is None
            return "replayed" if same and earlier == amount else "reference reused"
        spendable = self.spendable(user_id, at)
        if sum(b.remaining for b in spendable) < amount:
            return "insufficient"
        for batch in spendable:
            if amount == 0:
                break
            drawn = min(batch.remaining, amount)
            batch.remaining -= drawn
            batch.status = "active" if batch.remaining else "consumed"
            amount -= drawn
            self.ledger.append((user_id, "consume", -drawn, batch.reference_id, reference_id))
        self.spent[(user_id, reference_id)] = (service, quantity)
        return "spent"

    def grant_one_off(self, user_id, amount, source, reference_id, expires_at, strict=True):
        """A batch under the app's reference, once: a replay for the same user and source (and
        amount, unless not strict) answers it; anything else under the reference is refused."""
        earlier = self.batches.get(reference_id)
        if earlier:
            same = (earlier.user_id, earlier.source) == (user_id, source)
            return "replayed" if same and (earlier.amount == amount or not strict) else "reused"
        batch = Batch(user_id, reference_id, amount, expires_at, source=source)
        self.batches[reference_id] = batch
        self.ledger.append((user_id, "grant", amount, reference_id, reference_id))
        return "granted"

    def buy(self, user_id, package, reference_id, at, max_balance):
        """A pack (credits + bonus, its validity), refused above max_balance; once per purchase."""
        credits, bonus, validity_days = package
        earlier = self.batches.get(reference_id)
        if not earlier and max_balance is not None:
            if self.balance(user_id) + credits + bonus > max_balance:
                return "over cap"
        expires_at = at + timedelta(validity_days) if validity_days else None
        return self.grant_one_off(user_id, credits + bonus, "purchase", reference_id, expires_at)

    def registration_bonus(self, user_id, at, registration):
        """The sign-up bonus, once per user whatever is replayed."""
        credits, validity_days = registration
        expires_at = at + timedelta(validity_days) if validity_days else None
        return self.grant_one_off(
            user_id, credits, "registration", f"registration:{user_id}", expires_at, strict=False
        )

    def reverse(self, user_id, reference_id, at):
        """A spend's credits back to their batches; to a batch past its date, expired or voided
        they are given back and written off at once (lapse). Once per spend."""
        mine = [e for e in self.ledger if e[0] == user_id and e[4] == reference_id]
        if any(e[1] == "reverse" for e in mine):
            return "replayed"
        draws = sorted(
            ((self.batches[e[3]], -e[2]) for e in mine if e[1] == "consume"),
            key=lambda draw: draw[0].id,
        )
        if not draws:
            return "unknown reference"
        for batch, amount in draws:
            self.ledger.append((user_id, "reverse", amount, batch.reference_id, reference_id))
            live = batch.expires_at is None or batch.expires_at > at
            if batch.status in ("active", "consumed") and live:
                batch.remaining += amount
                batch.status = "active"
            else:
                self.ledger.append((user_id, "lapse", -amount, batch.reference_id, reference_id))
        return "reversed"

    def void(self, reference_id):
        """What remains of a one-off grant, taken back once; a subscription's grant cannot be."""
        batch = self.batches.get(reference_id)
        if batch is None:
            return "unknown reference"
        if batch.source == "subscription":
            return "not voidable"
        if batch.status == "voided":
            return "replayed"
        if batch.status == "expired":  # nothing remains, and it stays expired
            return "voided"
        if batch.remaining:
            self.ledger.append(
                (batch.user_id, "void", -batch.remaining, reference_id, reference_id)
            )
        batch.remaining, batch.status = 0, "voided"
        return "voided"

    def spendable(self, user_id, at):
        """The user's batches not past their date at `at`, in the order they are spent."""
        return sorted(
            (
                b
                for b in self.batches.values()
                if b.user_id == user_id
                and b.status == "active"
                and (b.expires_at is None or b.expires_at > at)
            ),
            key=lambda b: (b.expires_at is None, b.expires_at or at, b.id),
        )

    def expire(self, at):
        """Close every active batch whose expires_at has come and write its remaining off."""
        expired = [
            b
            for b in self.batches.values()
            if b.status == "active" and b.expires_at is not None and b.expires_at <= at
        ]
        for b in expired:
            self.ledger.append(
                (b.user_id, "expire", -b.remaining, b.reference_id, f"expire:{b.id}")
            )
        results = {
            "processedBatches": len(expired),
            "processedUsers": len({b.user_id for b in expired}),
            "totalExpiredAmount": sum(b.remaining for b in expired),
        }
        for b in expired:
            b.status, b.remaining = "expired", 0
        return results

    def balance(self, user_id):
        """What the user holds: the sum of their ledger."""
        return sum(e[2] for e in self.ledger if e[0] == user_id)

    def balances(self):
        """Every user who was ever granted something, with their balance."""
        return {e[0]: self.balance(e[0]) for e in self.ledger}
