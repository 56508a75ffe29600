"""Random sequences of steps, applied to the service on a real database and to tests/model.py.

After every step the balances, batches, ledger and runs must match the model's, and every
balance must equal its ledger and its active batches, never below zero. The suite runs a short
version; CREDITS_MODEL_EXAMPLES and CREDITS_MODEL_STEPS make it longer (docs/RELIABILITY.md).
"""

import dataclasses
import os
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import hypothesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from credits import jobs, ledger
from credits.console import actions
from credits.console.operators import Operator
from testing import SECRET
from testing.events_check import event_mismatches
from testing.model import Batch, Credits, Subscription, midnight
from testing.seeders import add_subscription

EXAMPLES = int(os.environ.get("CREDITS_MODEL_EXAMPLES", "40"))
STEPS = int(os.environ.get("CREDITS_MODEL_STEPS", "40"))

ALL_USERS = ["alice", "bob", "carol"]
USERS = st.sampled_from(ALL_USERS)
LOADED_PLANS = ["basic", "pro", "addon"]
PLAN_IDS = st.sampled_from([*LOADED_PLANS, "basic", "retired"])  # "retired" is never loaded
STATUSES = st.sampled_from(["active", "active", "active", "trialing", "canceled"])
REFERENCES = st.sampled_from(["order-1", "order-2", "order-3", "order-4"])
# Offsets on both sides of UTC: the rules read the UTC date and day of month.
ZONES = st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=-8)), timezone(timedelta(hours=14))]
)
STARTS = st.datetimes(datetime(2025, 11, 1), datetime(2026, 4, 30), timezones=ZONES)
# Any day, or a month's last day (every subscription's due day has come by then).
RUN_DATES = st.one_of(
    st.dates(date(2026, 1, 1), date(2026, 7, 31)),
    st.integers(2, 8).map(lambda month: date(2026, month, 1) - timedelta(days=1)),
)
# Moments in time; midnights often, since batches expire at 00:00 UTC.
MOMENTS = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 10, 1), timezones=st.just(timezone.utc)),
    RUN_DATES.map(midnight),
)
TERMS = st.tuples(st.integers(1, 100), st.none() | st.integers(1, 90))
# The app's side: packs (credits, bonus, validity days), a service, the sign-up bonus.
PACKAGES = {"small": (30, 5, 10), "big": (200, 0, None)}
CHAT_COST = 3
REGISTRATION = (15, 20)
# Grant references are shared by one-off grants and packs, so each can collide with the other.
GRANT_REFERENCES = st.sampled_from(["pay-1", "pay-2", "pay-3", "promo-1"])
SOURCES = st.sampled_from(["purchase", "promotion", "adjustment"])
HOURS = st.integers(0, 1080)
OUTCOMES = {
    ledger.InsufficientCredits: "insufficient",
    ledger.ReferenceReused: "reused",
    ledger.OverBalanceCap: "over cap",
    ledger.UnknownPackage: "unknown package",
    ledger.UnknownReference: "unknown reference",
    ledger.NotVoidable: "not voidable",
}

# The console's actions, as an operator takes them: at the database's clock (now), a grant's
# reference made from its form's key (a few keys, so a form sent twice, or a key meeting
# another grant, happens).
OPERATOR = Operator("ann", "operator", "stamp")
FORM_KEYS = st.sampled_from([uuid.UUID(int=n) for n in (1, 2, 3)])
REASONS = st.sampled_from(["goodwill", "refund <b>&", "chargeback"])

figures = Counter()


class CreditsMachine(RuleBasedStateMachine):
    """One sequence: a fresh ledger, the same steps applied to the service and to the model."""

    subscriptions = Bundle("subscriptions")

    def __init__(self, pool, service_settings, client, sql_run):
        super().__init__()
        self.pool, self.settings, self.client, self.sql = pool, service_settings, client, sql_run
        self.sql(
            "TRUNCATE credits.transactions, credits.batches, credits.balances, credits.job_runs, "
            "credits.job_progress, credits.subscription_grants, credits.subscriptions, "
            "credits.plans, credits.packages, credits.services, credits.registration, "
            "credits.limits, credits.console_actions, credits.job_run_failures, credits.events, "
            "credits.low_balances, credits.notice_horizon RESTART IDENTITY"
        )
        for package_id, (credits, bonus, validity_days) in PACKAGES.items():
            self.sql(
                "INSERT INTO credits.packages VALUES (%s, %s, %s, %s)",
                (package_id, credits, bonus, validity_days),
            )
        self.sql("INSERT INTO credits.services VALUES ('chat', %s)", (CHAT_COST,))
        self.sql("INSERT INTO credits.registration VALUES (true, %s, %s)", REGISTRATION)
        self.max_balance = None
        self.model = Credits(
            eligible_statuses=tuple(service_settings.eligible_statuses),
            catch_up_days=service_settings.catch_up_days,
        )
        self.runs = Counter()
        self.last_run_date = self.last_expiry = None
        self.last_console_grant = None
        figures["sequences"] += 1

    def step(self, name):
        figures["steps"] += 1
        figures[name] += 1

    @initialize(terms=st.lists(TERMS, min_size=len(LOADED_PLANS), max_size=len(LOADED_PLANS)))
    def load_plans(self, terms):
        for plan_id, plan_terms in zip(LOADED_PLANS, terms, strict=True):
            self.upsert_plan(plan_id, plan_terms)

    def upsert_plan(self, plan_id, terms):
        self.sql(
            "INSERT INTO credits.plans VALUES (%s, %s, %s) ON CONFLICT (plan_id) DO UPDATE "
            "SET monthly_credits = excluded.monthly_credits, "
            "validity_days = excluded.validity_days",
            (plan_id, *terms),
        )
        self.model.plans[plan_id] = terms

    @initialize(
        target=subscriptions,
        subs=st.lists(st.tuples(USERS, PLAN_IDS, STARTS, STATUSES), min_size=1, max_size=6),
    )
    def subscribe_some(self, subs):
        return multiple(*(self.subscribe(*sub) for sub in subs))

    @rule(target=subscriptions, user=USERS, plan=PLAN_IDS, started_at=STARTS, status=STATUSES)
    def subscribe(self, user, plan, started_at, status):
        self.step("subscribe")
        sub_id = f"sub-{len(self.model.subscriptions) + 1}"
        add_subscription(self.sql, sub_id, user, plan, started_at, status)
        self.model.subscriptions[sub_id] = Subscription(user, plan, started_at, status)
        return sub_id

    @rule(sub_id=subscriptions, ends_at=st.none() | MOMENTS | STARTS, now=st.booleans())
    def cancel(self, sub_id, ends_at, now):
        """Cancel now (status canceled) or at the end of the period (ends_at only)."""
        self.step("cancel")
        sub = self.model.subscriptions[sub_id]
        sub.status = "canceled" if now else sub.status
        sub.ends_at = ends_at
        self.sql(
            "UPDATE credits.subscriptions SET status = %s, ends_at = %s WHERE id = %s",
            (sub.status, ends_at, sub_id),
        )

    @rule(sub_id=subscriptions, plan=PLAN_IDS)
    def change_plan(self, sub_id, plan):
        self.step("change_plan")
        self.model.subscriptions[sub_id].plan_id = plan
        self.sql("UPDATE credits.subscriptions SET plan_id = %s WHERE id = %s", (plan, sub_id))

    @rule(plan=st.sampled_from(LOADED_PLANS), terms=TERMS)
    def change_plan_terms(self, plan, terms):
        self.step("change_plan_terms")
        self.upsert_plan(plan, terms)

    @rule(run_date=RUN_DATES, dry_run=st.booleans(), over_http=st.booleans())
    def grant(self, run_date, dry_run, over_http):
        self.step("grant_dry_run" if dry_run else "grant")
        expected = self.model.grant(run_date, dry_run)
        if over_http:
            query = f"date={run_date}" + ("&dryRun=true" if dry_run else "")
            response = self.client.get(
                f"/api/jobs/credits/grant?{query}", headers={"Authorization": f"Bearer {SECRET}"}
            )
            assert response.status_code == 200, response.get_json()
            results = response.get_json()["results"]
        else:
            results = jobs.grant(
                self.pool, self.settings, run_date, jobs.GrantOptions(dry_run=dry_run)
            ).results
        assert {name: results[name] for name in expected} == expected
        figures["batches granted"] += 0 if dry_run else expected["successful"]
        if not dry_run:
            self.runs["grant"] += 1
            self.last_run_date = run_date
            self.take_batch_ids()

    @rule(run_date=RUN_DATES)
    def grant_for_a_day(self, run_date):
        """The daily run, the most common step (the rule above also covers dry runs and HTTP)."""
        self.grant(run_date, dry_run=False, over_http=False)

    @precondition(lambda self: self.last_run_date is not None)
    @rule(days=st.integers(1, 10))
    def grant_days_later(self, days):
        """The next daily run, after days missed by an outage (often across a month's end)."""
        self.grant(self.last_run_date + timedelta(days), dry_run=False, over_http=False)

    @precondition(lambda self: self.last_run_date is not None)
    @rule()
    def grant_again(self):
        """A cron retry of the last grant: everything it finds is already granted."""
        self.grant(self.last_run_date, dry_run=False, over_http=False)

    @rule(
        pick=st.integers(0, 9),
        share=st.integers(1, 130),
        reference=REFERENCES,
        hours=st.integers(0, 1080),
    )
    def consume(self, pick, share, reference, hours):
        """Spend a share (up to 130%) of what a user holds, up to 45 days after the last grant.

        Mostly a user who holds credits then, sometimes anyone (who may hold none).
        """
        self.step("consume")
        at = midnight(self.last_run_date or date(2026, 1, 1)) + timedelta(hours=hours)
        holders = [u for u in ALL_USERS if self.model.spendable(u, at)] if pick < 8 else []
        user = (holders or ALL_USERS)[pick % len(holders or ALL_USERS)]
        amount = max(1, sum(b.remaining for b in self.model.spendable(user, at)) * share // 100)
        expected = self.model.consume(user, amount, reference, at)
        try:
            request = ledger.SpendRequest(user, reference, amount=amount, at=at)
            outcome = ledger.spend(self.pool, request)
            got = "replayed" if outcome["replayed"] else "spent"
            assert outcome["balance"] == self.model.balance(user)
        except ledger.InsufficientCredits:
            got = "insufficient"
        except ledger.ReferenceReused:
            got = "reference reused"
        assert got == expected
        figures[f"consume {got}"] += 1

    def moment(self, hours):
        """A moment up to 45 days after the last grant, as spending uses."""
        return midnight(self.last_run_date or date(2026, 1, 1)) + timedelta(hours=hours)

    def outcome(self, call):
        """What the service answered: granted, replayed, or the refusal's name."""
        try:
            answer = call()
        except tuple(OUTCOMES) as exc:
            return OUTCOMES[type(exc)]
        self.take_batch_ids()
        return answer

    @rule(
        user=USERS,
        amount=st.integers(1, 60),
        source=SOURCES,
        reference=GRANT_REFERENCES,
        days=st.none() | st.integers(1, 60),
        hours=HOURS,
    )
    def grant_one_off(self, user, amount, source, reference, days, hours):
        self.step("grant_one_off")
        at = self.moment(hours)
        expires_at = at + timedelta(days) if days else None
        expected = self.model.grant_one_off(user, amount, source, reference, expires_at)
        got = self.outcome(
            lambda: ledger.grant(
                self.pool,
                ledger.GrantRequest(user, amount, source, reference, validity_days=days, at=at),
            )
        )
        assert _granted(got) == expected
        figures[f"grant_one_off {expected}"] += 1

    @rule(
        user=USERS,
        package=st.sampled_from([*PACKAGES, "gone"]),
        reference=GRANT_REFERENCES,
        hours=HOURS,
    )
    def buy(self, user, package, reference, hours):
        self.step("buy")
        at = self.moment(hours)
        if package in PACKAGES:
            expected = self.model.buy(user, PACKAGES[package], reference, at, self.max_balance)
        else:
            expected = "unknown package"
        got = self.outcome(lambda: ledger.buy(self.pool, user, package, reference, at=at))
        assert _granted(got) == expected
        figures[f"buy {expected}"] += 1

    @rule(max_balance=st.none() | st.integers(50, 400))
    def set_cap(self, max_balance):
        self.step("set_cap")
        self.max_balance = max_balance
        self.sql(
            "INSERT INTO credits.limits VALUES (true, %s) "
            "ON CONFLICT (singleton) DO UPDATE SET max_balance = excluded.max_balance",
            (max_balance,),
        )

    @rule(user=USERS, hours=HOURS)
    def registration_bonus(self, user, hours):
        self.step("registration_bonus")
        at = self.moment(hours)
        expected = self.model.registration_bonus(user, at, REGISTRATION)
        got = self.outcome(lambda: ledger.registration_bonus(self.pool, user, at=at))
        assert _granted(got) == expected

    @rule(user=USERS, quantity=st.integers(1, 20), reference=REFERENCES, hours=HOURS)
    def spend_service(self, user, quantity, reference, hours):
        self.step("spend_service")
        at = self.moment(hours)
        expected = self.model.consume(user, CHAT_COST * quantity, reference, at, "chat", quantity)
        got = self.outcome(
            lambda: ledger.spend(
                self.pool,
                ledger.SpendRequest(user, reference, service="chat", quantity=quantity, at=at),
            )
        )
        if isinstance(got, dict):
            assert got["balance"] == self.model.balance(user)
            got = "replayed" if got["replayed"] else "spent"
        assert got == {"reference reused": "reused"}.get(expected, expected)

    @rule(user=USERS, reference=REFERENCES, hours=HOURS)
    def reverse(self, user, reference, hours):
        self.step("reverse")
        at = self.moment(hours)
        expected = self.model.reverse(user, reference, at)
        got = self.outcome(lambda: ledger.reverse(self.pool, user, reference, at=at))
        if isinstance(got, dict):
            assert got["balance"] == self.model.balance(user)
            got = "replayed" if got["replayed"] else "reversed"
        assert got == expected
        figures[f"reverse {expected}"] += 1

    @rule(reference=GRANT_REFERENCES | st.just("a subscription's"))
    def void(self, reference):
        self.step("void")
        if reference == "a subscription's":
            reference = next(
                (r for r, b in self.model.batches.items() if b.source == "subscription"), "none"
            )
        expected = self.model.void(reference)
        got = self.outcome(lambda: ledger.void(self.pool, reference))
        if isinstance(got, dict):
            got = "replayed" if got["replayed"] else "voided"
        assert got == expected
        figures[f"void {expected}"] += 1

    def console_outcome(self, outcome, action):
        """What a console action answered, as outcome() says it; its ledger entries checked."""
        figures[f"console {action} {outcome.result}"] += 1
        self.console_entries_name_their_action()
        if outcome.result == "refused":
            return OUTCOMES[ledger.REFUSALS[outcome.answer["code"]]]
        assert outcome.result in ("done", "replayed"), outcome
        if outcome.result == "done":
            answer = outcome.answer
            written = {
                "grant": 1,
                "reverse": len(answer.get("entries") or ()),
                "void": int(bool(answer.get("voided"))),
            }[action]
            [entries] = self.sql(
                "SELECT count(*) AS n FROM credits.transactions WHERE metadata->>'console_action' "
                "= (SELECT max(id) FROM credits.console_actions)::text"
            )
            assert entries["n"] == written
        self.take_batch_ids()
        return outcome.answer

    def console_entries_name_their_action(self):
        """Every ledger entry a console action wrote names the operator, the reason and the
        recorded action, which is done."""
        written = self.sql(
            "SELECT t.metadata, a.operator, a.reason, a.result FROM credits.transactions t "
            "LEFT JOIN credits.console_actions a ON a.id = (t.metadata->>'console_action')::bigint "
            "WHERE t.metadata ? 'console_action'"
        )
        for row in written:
            assert row["metadata"]["operator"] == row["operator"] == OPERATOR.name, row
            assert row["metadata"]["reason"] == row["reason"] and row["result"] == "done", row

    @rule(user_id=USERS, amount=st.integers(1, 60), key=FORM_KEYS, reason=REASONS)
    def console_grant(self, user_id, amount, key, reason, validity_days=None):
        """An operator's grant (never expiring: its clock is the database's)."""
        self.step("console_grant")
        user, why = user_id, reason
        asked = actions.GrantAsked(user, amount, why, validity_days, key)
        expected = self.model.grant_one_off(
            user, amount, actions.GRANT_SOURCE, asked.reference_id, None
        )
        got = self.console_outcome(actions.grant(self.pool, OPERATOR, asked), "grant")
        assert _granted(got) == expected
        self.last_console_grant = asked

    @precondition(lambda self: self.last_console_grant is not None)
    @rule()
    def console_grant_again(self):
        """The same grant form sent once more (a double click, a reload)."""
        self.console_grant(**dataclasses.asdict(self.last_console_grant))

    @rule(pick=st.integers(0, 9), user=USERS, reference=REFERENCES, why=REASONS)
    def console_reverse(self, pick, user, reference, why):
        """Mostly the reversal of a spend made, sometimes of any user and reference."""
        self.step("console_reverse")
        spends = sorted({(e[0], e[4]) for e in self.model.ledger if e[1] == "consume"})
        if spends and pick < 8:
            user, reference = spends[pick % len(spends)]
        now = datetime.now(timezone.utc)  # after every batch's date here: what is drawn lapses
        expected = self.model.reverse(user, reference, now)
        outcome = actions.reverse(self.pool, OPERATOR, user, reference, why)
        got = self.console_outcome(outcome, "reverse")
        if isinstance(got, dict):
            assert got["balance"] == self.model.balance(user)
            got = "replayed" if got["replayed"] else "reversed"
        assert got == expected

    @rule(
        pick=st.integers(0, 9),
        reference=GRANT_REFERENCES,
        user=USERS,
        owner=st.booleans(),
        why=REASONS,
    )
    def console_void(self, pick, reference, user, owner, why):
        """A void from a user's page: mostly of a grant made, of its user's or (refused) of
        another's; sometimes of any reference."""
        self.step("console_void")
        made = sorted(self.model.batches)
        if made and pick < 8:
            reference = made[pick % len(made)]
        batch = self.model.batches.get(reference)
        user = batch.user_id if owner and batch else user
        expected = (
            "unknown reference" if batch and batch.user_id != user else self.model.void(reference)
        )
        outcome = actions.void(self.pool, OPERATOR, user, reference, why)
        got = self.console_outcome(outcome, "void")
        if isinstance(got, dict):
            got = "replayed" if got["replayed"] else "voided"
        assert got == expected

    @rule(user=USERS, hours=HOURS)
    def account(self, user, hours):
        self.step("account")
        at = self.moment(hours)
        account = ledger.account(self.pool, user, at=at)
        spendable = self.model.spendable(user, at)
        assert account["balance"] == self.model.balance(user)
        assert account["spendable"] == sum(b.remaining for b in spendable)
        dated = [b for b in spendable if b.expires_at is not None]
        if dated:
            soonest = min(b.expires_at for b in dated)
            assert account["next_expiry"]["amount"] == sum(
                b.remaining for b in dated if b.expires_at == soonest
            )
            assert datetime.fromisoformat(account["next_expiry"]["expires_at"]) == soonest
        else:
            assert account["next_expiry"] is None

    @rule(at=MOMENTS)
    def expire(self, at):
        self.step("expire")
        expected = self.model.expire(at)
        results = jobs.expire(self.pool, self.settings, jobs.ExpireOptions(at=at)).results
        assert {name: results[name] for name in expected} == expected
        figures["batches expired"] += expected["processedBatches"]
        self.runs["expire"] += 1
        self.last_expiry = at

    @precondition(lambda self: self.last_expiry is not None)
    @rule()
    def expire_again(self):
        """A cron retry of the last expiry: nothing is left to expire."""
        self.expire(self.last_expiry)

    def take_batch_ids(self):
        """The database numbers batches; spending breaks ties between them by that number."""
        # (Called after every grant; one-off grants and packs number batches too.)
        for row in self.sql("SELECT id, reference_id FROM credits.batches"):
            self.model.batches[row["reference_id"]].id = row["id"]

    @invariant()
    def service_matches_model(self):
        figures["checks"] += 1
        batches = {}
        for row in self.sql("SELECT * FROM credits.batches"):
            batch = Batch(row["user_id"], row["reference_id"], row["amount"], row["expires_at"])
            batch.remaining, batch.status, batch.id = row["remaining"], row["status"], row["id"]
            batch.source = row["source"]
            batches[batch.reference_id] = batch
        assert batches == self.model.batches

        entries = self.sql(
            "SELECT t.user_id, t.type, t.amount, b.reference_id AS batch, t.reference_id "
            "FROM credits.transactions t JOIN credits.batches b ON b.id = t.batch_id"
        )
        assert sorted(tuple(e.values()) for e in entries) == sorted(self.model.ledger)

        balances = {b["user_id"]: b["balance"] for b in self.sql("SELECT * FROM credits.balances")}
        assert balances == self.model.balances()
        assert all(balance >= 0 for balance in balances.values())
        assert ledger.find_invariant_violations(self.pool) == ([], 0)
        assert event_mismatches(self.sql) == []  # each change has its one event, none more

        runs = self.sql("SELECT job, status, count(*) AS n FROM credits.job_runs GROUP BY 1, 2")
        assert {(r["job"], r["status"]): r["n"] for r in runs} == {
            (job, "succeeded"): n for job, n in self.runs.items()
        }


def test_service_matches_the_model_of_the_rules(pool, settings, app, sql_run):
    figures.clear()
    run_state_machine_as_test(
        lambda: CreditsMachine(pool, settings, app.test_client(), sql_run),
        settings=settings_for_run(),
    )
    # Reached only when every check passed; run with -s to see the figures.
    print(
        "\nmodel, no difference found: " + ", ".join(f"{n} {k}" for k, n in sorted(figures.items()))
    )


def settings_for_run():
    return hypothesis.settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _granted(answer):
    """A grant's answer as the model says it: granted, replayed, or the refusal's name."""
    if isinstance(answer, dict):
        return "replayed" if answer["replayed"] else "granted"
    return answer
