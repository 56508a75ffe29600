"""Load run: gunicorn with several workers, concurrent grant and expire triggers, parallel spending,
and the app's side alongside: buyers of credit packs, reversers of spends, voiders of packs; and
operators granting, reversing and voiding through the console's actions.

On loopback only, on a database made for the run and dropped after it, with the service and
the consumers connected as the least-privileged role of sql/roles.sql. Afterwards it checks
that nothing was granted or expired twice, lost, or left below zero, and prints what was tried.

    .venv/bin/python -m reliability.load --server-url postgresql://postgres@127.0.0.1:5432/test

Exit status 1 when any check fails. Every count and the time are bounded (see --help).
"""

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timezone

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from credits import config, db, ledger
from credits.console import actions
from credits.console.operators import Operator
from testing.databases import admin, create_database, drop_database, embedded_server, unique_name
from testing.events_check import event_mismatches
from testing.invariant import invariant_violations
from testing.model import Credits, Subscription
from testing.seeders import add_package, add_plan, add_subscription
from testing.served import Served

SECRET = "load-secret-" + uuid.uuid4().hex
# Batches of "short" expire before today, "long" and "forever" stay spendable.
PLANS = {"short": (100, 30), "long": (60, 3650), "forever": (40, None)}
# Packs the buyers buy: credits, bonus, validity days.
PACKAGES = {"small": (100, 10, 30), "large": (1000, 0, None)}
# Past run dates: several days in each of a few months, so same-day and same-month triggers race.
RUN_DATES = [date(2026, m, d) for m in (2, 3, 4) for d in (5, 15, 28)]
# Calls of one job in the quiet phase before a run that still answers "complete": false is a
# violation (each call has the default time budget).
QUIET_CALLS = 10
# Spends as of now, or as of a past moment when "short" batches were still spendable: then
# spending and expiry race for the same batches.
SPEND_TIMES = [None, *(datetime(2026, m, 1, tzinfo=timezone.utc) for m in (3, 4, 5))]
# The operator the console's actions are taken as (the actions need no signed-in session).
OPERATOR = Operator("load-operator", "operator", "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="PostgreSQL server to make the run's database on "
        "(default: TEST_DATABASE_URL, else an embedded PostgreSQL)",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--users", type=int, default=2000, help="subscribers (3 plans each)")
    parser.add_argument("--triggers", type=int, default=300, help="grant and expire requests")
    parser.add_argument("--trigger-threads", type=int, default=12, help="requests in flight")
    parser.add_argument("--consumers", type=int, default=8, help="spending threads")
    parser.add_argument("--spends", type=int, default=300, help="spends per consumer")
    parser.add_argument(
        "--app-threads", type=int, default=6, help="buyers, reversers and voiders, in turn"
    )
    parser.add_argument("--app-calls", type=int, default=150, help="calls per app thread")
    parser.add_argument(
        "--operators", type=int, default=1, help="threads taking the console's actions"
    )
    parser.add_argument("--operator-calls", type=int, default=60, help="actions per operator")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop firing after this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run_load(**vars(args))
    print(json.dumps(report, indent=2, default=str))
    sys.exit(1 if report["violations"] else 0)


@dataclass
class Load:
    """A load run's settings: the command line's options."""

    server_url: str | None = None
    workers: int = 4
    users: int = 2000
    triggers: int = 300
    trigger_threads: int = 12
    consumers: int = 8
    spends: int = 300
    max_seconds: float = 240
    seed: int = 1
    app_threads: int = 6
    app_calls: int = 150
    operators: int = 1
    operator_calls: int = 60


def run_load(server_url=None, **settings):
    """Run the load once; return the report (its "violations" list is empty when all held)."""
    load = Load(server_url, **settings)
    with ExitStack() as stack:
        if load.server_url is None:
            load.server_url = stack.enter_context(embedded_server())
        name = unique_name("credits_load")
        role = name + "_service"
        try:
            owner_url, role_url = _make_database(load.server_url, name, role)
            run = Run(load, role_url, _seed(owner_url, load.users))
            with _service(role_url, load.workers) as service:
                run.fire(service)
                run.report["violations"] += Check(owner_url, run).violations()
            run.report_service(service.output)
            return run.report
        finally:
            _drop_database(load.server_url, name, role)


def _make_database(server_url, name, role):
    """The run's database with the schema, and the service role of sql/roles.sql on it."""
    owner_url = create_database(server_url, name)
    pool = db.open_pool(config.Settings.from_mapping({"DATABASE_URL": owner_url}), max_size=1)
    with pool:
        db.prepare(pool)
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute("SELECT set_config('credits.service_role', %s, false)", (role,))
        owner.execute(db.queries["roles"])
        owner.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    return owner_url, make_conninfo(owner_url, user=role)


def _drop_database(server_url, name, role):
    drop_database(server_url, name)
    admin(server_url, "DROP ROLE IF EXISTS {}", role)


def _seed(owner_url, users):
    """Three subscriptions a user, one per plan, started on days 1 to 28 of January 2026."""
    model = Credits(plans=dict(PLANS))
    with psycopg.connect(owner_url) as conn, conn.pipeline(), conn.cursor() as cur:
        for plan_id, terms in PLANS.items():
            add_plan(cur.execute, plan_id, *terms)
        for package_id, terms in PACKAGES.items():
            add_package(cur.execute, package_id, *terms)
        for i in range(users):
            started_at = datetime(2026, 1, 1 + i % 28, tzinfo=timezone.utc)
            for plan_id in PLANS:
                sub_id = f"{plan_id}-{i}"
                add_subscription(cur.execute, sub_id, f"user-{i}", plan_id, started_at)
                model.subscriptions[sub_id] = Subscription(f"user-{i}", plan_id, started_at)
    return model


def _service(database_url, workers):
    """The Procfile's gunicorn with `workers` workers, as the least-privileged role."""
    env = {"DATABASE_URL": database_url, "CRON_SECRET": SECRET, "WEB_CONCURRENCY": str(workers)}
    env |= {"CREDITS_APPLY_SCHEMA": "false", "CREDITS_DB_TIMEOUT": "10"}
    return Served(env, scrub=("CREDITS_", "DATABASE"))


def _call(service, path):
    """(status, body) of a triggered job; (0, reason) when the connection itself failed."""
    try:
        return service.call(path, SECRET, timeout=120)
    except OSError as err:
        return 0, str(err)


class Run:
    """One load run: its settings, the model of what is due, what was fired and answered."""

    def __init__(self, load, role_url, model):
        self.load, self.role_url, self.model = load, role_url, model
        self.rng = random.Random(load.seed)
        self.deadline = time.monotonic() + load.max_seconds
        self.lock = threading.Lock()
        self.statuses, self.bodies, self.spent, self.app = Counter(), [], Counter(), Counter()
        self.spends_done, self.purchases = [], []  # what reversers and voiders pick from
        self.console_grants = []  # (user, reference) of the operators' grants, to void
        self.console_forms = []  # their forms, to send again
        self.consumers_left = load.consumers
        self.errors = {}  # the first message of each kind of error a call failed with
        self.report = {}

    def fire(self, service):
        """Triggers, spends and app calls at once; then one quiet grant per date and expire."""
        self.service = service
        plan = [
            ("grant", self.rng.choice(RUN_DATES)) if self.rng.random() < 0.7 else ("expire", None)
            for _ in range(self.load.triggers)
        ]
        elapsed = self.under_load(plan)
        quiet = self.quiet()
        self.report = {
            "triggers": {
                "fired": sum(self.statuses.values()),
                "by status": dict(sorted(self.statuses.items())),
                "distinct grant dates": len({d for _, d in plan if d}),
                "threads": self.load.trigger_threads,
            },
            "consumers": {"threads": self.load.consumers, **dict(sorted(self.spent.items()))},
            "app": {"threads": self.load.app_threads, **dict(sorted(self.app.items()))},
            "seconds under load": round(elapsed, 1),
            "quiet runs": dict(quiet),
            "violations": [f"a quiet run did not answer 200 or finish: {dict(quiet)}"]
            if any(key.endswith(("not 200", "not complete")) for key in quiet)
            else [],
        }

    def under_load(self, plan):
        """Fire the planned triggers while consumers and the app call; answer the seconds taken."""
        load = self.load
        settings = config.Settings.from_mapping(
            {"DATABASE_URL": self.role_url, "CREDITS_APPLY_SCHEMA": "false"}
        )
        callers = load.consumers + load.app_threads + load.operators
        self.pool = db.open_pool(settings, max_size=callers)
        self.users = sorted({s.user_id for s in self.model.subscriptions.values()})
        retries = RetryCounter()
        logging.getLogger("credits").addHandler(retries)
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(load.trigger_threads + callers) as executor:
                spending = [executor.submit(self.consumer, n) for n in range(load.consumers)]
                spending += [executor.submit(self.app_caller, n) for n in range(load.app_threads)]
                spending += [executor.submit(self.operator, n) for n in range(load.operators)]
                firing = [executor.submit(self.trigger, t) for t in plan]
                for f in firing + spending:
                    f.result()
        finally:
            logging.getLogger("credits").removeHandler(retries)
            self.pool.close()
        self.spent["deadlocks retried"] = retries.count
        return time.monotonic() - started

    def quiet(self):
        """Every date once more, then expire twice, each alone, called again while it answers
        "complete": false (as a cron platform's next call carries on); all must answer 200.

        The first expire may only finish a pass the load left (a user a spend held is skipped
        and tried again later), whose cutoff came before some of the load's grants; the second
        is a new pass, after every grant."""
        quiet = Counter()
        for job_date in [("grant", d) for d in RUN_DATES] + [("expire", None)] * 2:
            for _ in range(QUIET_CALLS):
                before = len(self.bodies)
                self.trigger(job_date)
                answered = len(self.bodies) > before
                quiet[f"{job_date[0]} {200 if answered else 'not 200'}"] += 1
                if not answered or self.bodies[-1][1].get("complete", True):
                    break
            else:
                quiet[f"{job_date[0]} not complete"] += 1
        return quiet

    def trigger(self, job_date):
        """Call one job over HTTP (unless the time is up) and count its answer."""
        job, run_date = job_date
        if time.monotonic() > self.deadline:
            return
        path = f"/api/jobs/credits/{job}" + (f"?date={run_date}" if run_date else "")
        status, body = _call(self.service, path)
        with self.lock:
            self.statuses[f"{job} {status}"] += 1
            if status == 200:
                self.bodies.append((job, body))

    def consumer(self, n):
        """Spend as a host app would, now and then retrying an earlier spend."""
        try:
            self.spend_some(n)
        finally:
            with self.lock:
                self.consumers_left -= 1

    def spend_some(self, n):
        """The consumer's spends, until its count or the time is up."""
        crng = random.Random(self.rng.random())
        done = []
        for i in range(self.load.spends):
            if time.monotonic() > self.deadline:
                break
            if done and crng.random() < 0.1:  # a caller's retry of an earlier spend
                user, amount, ref = crng.choice(done)
            else:
                user, amount, ref = crng.choice(self.users), crng.randint(1, 50), f"c{n}-{i}"
            result = self.spend(user, amount, ref, crng.choice(SPEND_TIMES))
            with self.lock:
                if result == "spent":
                    done.append((user, amount, ref))
                    self.spends_done.append((user, ref))
                self.spent[result] += 1
                if result == "spent":
                    self.spent["credits spent"] += amount

    def spend(self, user, amount, ref, at):
        """What one spend came to: spent, replayed, refused or an error."""
        try:
            request = ledger.SpendRequest(user, ref, amount=amount, at=at)
            outcome = ledger.spend(self.pool, request)
        except ledger.InsufficientCredits:
            return "refused, insufficient"
        except psycopg.Error as exc:
            return self.error(exc)
        return "replayed" if outcome["replayed"] else "spent"

    def app_caller(self, n):
        """A buyer, a reverser or a voider (by n), as the app's webhooks and handlers call."""
        arng = random.Random(self.rng.random())
        kind, i = n % 3, 0
        while i < self.load.app_calls and time.monotonic() < self.deadline:
            if kind and not (self.spends_done if kind == 1 else self.purchases):
                if not self.consumers_left:
                    break  # nothing was spent or bought, and nothing more will be
                time.sleep(0.05)  # nothing to reverse or void yet
                continue
            i += 1
            try:
                result, credits = self.app_call(kind, f"pay{n}-{i}", arng)
            except ledger.Refused as exc:
                result, credits = f"refused, {type(exc).__name__}", {}
            except psycopg.Error as exc:
                result, credits = self.error(exc), {}
            with self.lock:
                self.app[result] += 1
                self.app.update(credits)

    def error(self, exc):
        """The result "error <class>" of a failed call; its first message is kept for the report."""
        result = f"error {type(exc).__name__}"
        with self.lock:
            self.errors.setdefault(result, str(exc).strip())
        return result

    def app_call(self, kind, payment, rng):
        """One call of the app's side: (what happened, credits it moved by name)."""
        if kind == 0:
            return self.buy(payment, rng)
        user, ref = rng.choice(self.spends_done if kind == 1 else self.purchases)[:2]
        if kind == 1:  # a failed AI job gives its credits back
            answer = ledger.reverse(self.pool, user, ref)
            if answer["replayed"]:
                return "reverse replayed", {}
            return "reversed", {
                "credits returned": answer["returned"],
                "credits lapsed": answer["lapsed"],
            }
        answer = ledger.void(self.pool, ref)  # a refund or a chargeback
        if answer["replayed"]:
            return "void replayed", {}
        return "voided", {"credits voided": answer["voided"]}

    def buy(self, payment, rng):
        """A payment webhook buying a pack, sometimes a retry of an earlier one."""
        if self.purchases and rng.random() < 0.1:
            user, ref, package = rng.choice(self.purchases)
        else:
            user, ref, package = rng.choice(self.users), payment, rng.choice(sorted(PACKAGES))
        answer = ledger.buy(self.pool, user, package, ref)
        if answer["replayed"]:
            return "pack replayed", {}
        self.purchases.append((user, ref, package))
        return "pack bought", {"credits bought": answer["amount"]}

    def operator(self, n):
        """An operator at the console: grants, reversals of spends, voids of packs and grants."""
        orng = random.Random(self.rng.random())
        for _ in range(self.load.operator_calls):
            if time.monotonic() > self.deadline:
                break
            try:
                result, credits = self.console_action(
                    orng.choice(("grant", "reverse", "void")), orng
                )
            except psycopg.Error as exc:
                result, credits = self.error(exc), {}
            with self.lock:
                self.app[result] += 1
                self.app.update(credits)

    def console_action(self, kind, rng):
        """One console action (a grant when there is nothing to reverse or void yet):
        (what happened, credits it moved by name)."""
        voidable = self.purchases + self.console_grants
        if kind == "reverse" and self.spends_done:
            user, ref = rng.choice(self.spends_done)[:2]
            outcome = actions.reverse(self.pool, OPERATOR, user, ref, "the job failed")
            moved = {"credits returned": "returned", "credits lapsed": "lapsed"}
        elif kind == "void" and voidable:
            user, ref = rng.choice(voidable)[:2]
            outcome = actions.void(self.pool, OPERATOR, user, ref, "refund")
            moved = {"credits voided": "voided"}
        else:
            kind, outcome = "grant", self.console_grant(rng)
            moved = {"credits granted at the console": "amount"}
        if outcome.result != "done":
            return f"console {kind} {outcome.result}", {}
        answer = outcome.answer or {}
        return f"console {kind} done", {name: answer[key] for name, key in moved.items()}

    def console_grant(self, rng):
        """A console grant to anyone; now and then the same form sent again."""
        if self.console_forms and rng.random() < 0.1:
            asked = rng.choice(self.console_forms)
        else:
            form = {"amount": str(rng.randint(1, 100)), "reason": "goodwill"}
            asked = actions.grant_asked(rng.choice(self.users), form)
        outcome = actions.grant(self.pool, OPERATOR, asked)
        if outcome.result == "done":
            with self.lock:
                self.console_forms.append(asked)
                self.console_grants.append((asked.user_id, asked.reference_id))
        return outcome

    def report_service(self, output):
        """What the service logged: retries, tracebacks, and never the secret."""
        self.report["service"] = {
            "workers": self.load.workers,
            "deadlock retries logged": output.count("DeadlockDetected, retrying"),
            "tracebacks logged": output.count("Traceback"),
            "secret in output": SECRET in output,
        }
        if self.report["service"]["tracebacks logged"] or SECRET in output:
            self.report["violations"].append("the service logged a traceback or the secret")


class RetryCounter(logging.Handler):
    """Counts the spends retried after the server aborted them to break a deadlock."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        if "retrying" in record.getMessage():
            self.count += 1


class Check:
    """What the database holds against what the responses and the rules say."""

    def __init__(self, owner_url, run):
        self.owner_url, self.run, self.report = owner_url, run, run.report
        self.bodies = run.bodies
        self.found = []

    def violations(self):
        """Every check in turn; the list of what did not hold."""
        for run_date in RUN_DATES:
            self.run.model.grant(run_date)
        with psycopg.connect(self.owner_url, row_factory=psycopg.rows.dict_row) as self.conn:
            refs = self.batches()
            expired = self.expiry()
            self.ledger_entries()
            self.console_actions()
            consumed = self.spending()
            self.balances()
            self.job_runs()
            self.found += [f"events: {m}" for m in event_mismatches(self.rows)]
        self.report["database"] = {
            "batches": len(refs),
            "expired batches": expired["batches"],
            "credits expired": expired["amount"],
            "credits spent": consumed["amount"],
        }
        self.answers()
        return self.found

    def reported(self, job):
        """The results the job's 200 answers reported."""
        return [body["results"] for name, body in self.bodies if name == job]

    def expect_none(self, what, statement):
        """Note "<n> <what>" when the count the statement answers (as n) is not 0."""
        n = self.one(statement)["n"]
        if n:
            self.found.append(f"{n} {what}")

    def rows(self, statement):
        """Every row a statement answers."""
        return self.conn.execute(statement).fetchall()

    def one(self, statement):
        """The one row a statement answers."""
        return self.conn.execute(statement).fetchone()

    def batches(self):
        """The batches are those the rules make due, and those the responses report."""
        model = self.run.model
        rows = self.conn.execute(
            "SELECT reference_id FROM credits.batches WHERE source = 'subscription'"
        )
        refs = {r["reference_id"] for r in rows}
        if refs != set(model.batches):
            self.found.append(
                f"batches differ from the rules: {len(refs)} held, {len(model.batches)} due"
            )
        granted = sum(r["successful"] for r in self.reported("grant"))
        if granted != len(refs):
            self.found.append(f"responses report {granted} batches granted, {len(refs)} exist")
        return refs

    def expiry(self):
        """What the expire runs reported is what the ledger wrote off."""
        expired = self.one(
            "SELECT count(*) AS batches, coalesce(-sum(amount), 0) AS amount "
            "FROM credits.transactions WHERE type = 'expire'"
        )
        reported = self.reported("expire")
        batches = sum(r["processedBatches"] for r in reported)
        amount = sum(r["totalExpiredAmount"] for r in reported)
        if (batches, amount) != (expired["batches"], expired["amount"]):
            self.found.append(f"expiry reported {reported} does not match the ledger {expired}")
        return expired

    def ledger_entries(self):
        """No batch granted or expired twice; each batch's ledger adds up to what remains."""
        self.expect_none(
            "batches granted, expired or voided twice",
            "SELECT count(*) AS n FROM (SELECT batch_id FROM credits.transactions "
            "WHERE type IN ('grant', 'expire', 'void') GROUP BY batch_id, type "
            "HAVING count(*) > 1) t",
        )
        self.app_moves()
        # Per batch: what was granted, less what was spent and expired, is what remains.
        self.expect_none(
            "batches whose ledger does not add up",
            "SELECT count(*) AS n FROM credits.batches b JOIN (SELECT batch_id, sum(amount) AS "
            "total FROM credits.transactions GROUP BY batch_id) t ON t.batch_id = b.id "
            "WHERE t.total <> b.remaining",
        )

    def app_moves(self):
        """What the app calls answered they bought, returned, lapsed and voided is in the ledger."""
        moved = self.one(
            "SELECT coalesce(sum(amount) FILTER (WHERE type = 'grant' AND reference_id LIKE "
            "'pay%%'), 0) AS bought, "
            "coalesce(sum(amount) FILTER (WHERE type = 'reverse'), 0) "
            "  - coalesce(-sum(amount) FILTER (WHERE type = 'lapse'), 0) AS returned, "
            "coalesce(-sum(amount) FILTER (WHERE type = 'lapse'), 0) AS lapsed, "
            "coalesce(-sum(amount) FILTER (WHERE type = 'void'), 0) AS voided, "
            "coalesce(sum(amount) FILTER (WHERE type = 'grant' AND reference_id LIKE "
            "'console:%%'), 0) AS granted_at_the_console "
            "FROM credits.transactions"
        )
        app = self.report["app"]
        said = {
            "bought": app.get("credits bought", 0),
            "returned": app.get("credits returned", 0),
            "lapsed": app.get("credits lapsed", 0),
            "voided": app.get("credits voided", 0),
            "granted_at_the_console": app.get("credits granted at the console", 0),
        }
        if dict(moved) != said:
            self.found.append(f"the app's calls answered {said}, the ledger says {dict(moved)}")

    def console_actions(self):
        """Every console action finished as its caller was told; each of its ledger entries
        names the operator, the reason and the action."""
        self.expect_none(
            "console actions left pending or failed",
            "SELECT count(*) AS n FROM credits.console_actions "
            "WHERE result IN ('pending', 'failed')",
        )
        self.expect_none(
            "console ledger entries not naming their operator, reason and done action",
            "SELECT count(*) AS n FROM credits.transactions t "
            "LEFT JOIN credits.console_actions a "
            "  ON a.id = (t.metadata->>'console_action')::bigint "
            "WHERE (t.metadata ? 'console_action' OR t.reference_id LIKE 'console:%%') "
            "  AND (a.id IS NULL OR a.result <> 'done' OR a.operator <> t.metadata->>'operator' "
            "       OR a.reason <> t.metadata->>'reason')",
        )
        done = self.one("SELECT count(*) AS n FROM credits.console_actions WHERE result = 'done'")[
            "n"
        ]
        told = sum(n for result, n in self.report["app"].items() if result.endswith(" done"))
        if done != told:
            self.found.append(f"operators were told of {told} actions done, the audit has {done}")

    def balances(self):
        """Nothing past its date left active, no balance below zero, every balance adds up."""
        self.expect_none(
            "batches past their date still active",
            "SELECT count(*) AS n FROM credits.batches WHERE status = 'active' "
            "AND expires_at <= now()",
        )
        self.expect_none(
            "negative balances", "SELECT count(*) AS n FROM credits.balances WHERE balance < 0"
        )
        rows, count = invariant_violations(self.owner_url)
        if count:
            self.found.append(f"{count} users whose balance does not add up, e.g. {rows[:3]}")

    def spending(self):
        """The ledger's spends are what the consumers were told they spent."""
        consumed = self.one(
            "SELECT coalesce(-sum(amount), 0) AS amount FROM credits.transactions "
            "WHERE type = 'consume'"
        )
        spent = self.report["consumers"].get("credits spent", 0)
        if consumed["amount"] != spent:
            self.found.append(f"consumers spent {spent}, the ledger says {consumed['amount']}")
        return consumed

    def job_runs(self):
        """The runs recorded, by job and status, for the report."""
        runs = self.conn.execute(
            "SELECT job, status, count(*) AS n FROM credits.job_runs GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        self.report["job runs"] = {f"{r['job']} {r['status']}": r["n"] for r in runs}

    def answers(self):
        """No spend or app call failed with an error; every trigger answered 200 or 409."""
        for result, n in [*self.report["consumers"].items(), *self.report["app"].items()]:
            if result.startswith("error"):
                self.found.append(f"{n} calls failed with {result}: {self.run.errors[result]}")
        for key, n in self.report["triggers"]["by status"].items():
            if key.split()[1] not in ("200", "409"):
                self.found.append(f"{n} triggers answered {key}")


if __name__ == "__main__":
    main()
