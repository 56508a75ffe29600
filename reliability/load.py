"""Load run: gunicorn with several workers, concurrent grant and expire triggers, parallel spending.

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
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from credits import config, db, ledger
from testing.databases import admin, create_database, drop_database, embedded_server, unique_name
from testing.invariant import invariant_violations
from testing.model import Credits, Subscription
from testing.seeders import add_plan, add_subscription
from testing.served import Served

ROOT = Path(__file__).resolve().parent.parent

SECRET = "load-secret-" + uuid.uuid4().hex
# Batches of "short" expire before today, "long" and "forever" stay spendable.
PLANS = {"short": (100, 30), "long": (60, 3650), "forever": (40, None)}
# Past run dates: several days in each of a few months, so same-day and same-month triggers race.
RUN_DATES = [date(2026, m, d) for m in (2, 3, 4) for d in (5, 15, 28)]
# Spends as of now, or as of a past moment when "short" batches were still spendable: then
# spending and expiry race for the same batches.
SPEND_TIMES = [None, *(datetime(2026, m, 1, tzinfo=timezone.utc) for m in (3, 4, 5))]


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
    parser.add_argument("--max-seconds", type=float, default=240, help="stop firing after this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = run_load(**{k: v for k, v in vars(args).items()})
    print(json.dumps(report, indent=2, default=str))
    sys.exit(1 if report["violations"] else 0)


def run_load(
    server_url=None,
    workers=4,
    users=2000,
    triggers=300,
    trigger_threads=12,
    consumers=8,
    spends=300,
    max_seconds=240,
    seed=1,
):
    """Run the load once; return the report (its "violations" list is empty when all held)."""
    embedded = None
    if server_url is None:
        embedded = embedded_server()
        server_url = embedded.__enter__()
    name = unique_name("credits_load")
    role = name + "_service"
    try:
        owner_url, role_url = _make_database(server_url, name, role)
        model = _seed(owner_url, users)
        with _service(role_url, workers) as service:
            report = _fire(
                service,
                role_url,
                model,
                triggers,
                trigger_threads,
                consumers,
                spends,
                max_seconds,
                random.Random(seed),
            )
            report["violations"] += _check(owner_url, model, report)
        output = service.output
        report["service"] = {
            "workers": workers,
            "deadlock retries logged": output.count("DeadlockDetected, retrying"),
            "tracebacks logged": output.count("Traceback"),
            "secret in output": SECRET in output,
        }
        if report["service"]["tracebacks logged"] or report["service"]["secret in output"]:
            report["violations"].append("the service logged a traceback or the secret")
        return report
    finally:
        _drop_database(server_url, name, role)
        if embedded:
            embedded.__exit__(None, None, None)


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


def _fire(service, role_url, model, triggers, trigger_threads, consumers, spends, max_seconds, rng):
    """Triggers and spends at once; then one quiet grant per date and expire, to finish."""
    deadline = time.monotonic() + max_seconds
    plan = [
        ("grant", rng.choice(RUN_DATES)) if rng.random() < 0.7 else ("expire", None)
        for _ in range(triggers)
    ]
    statuses, bodies, lock = Counter(), [], threading.Lock()

    def trigger(job_date):
        job, run_date = job_date
        if time.monotonic() > deadline:
            return
        path = f"/api/jobs/credits/{job}" + (f"?date={run_date}" if run_date else "")
        status, body = _call(service, path)
        with lock:
            statuses[f"{job} {status}"] += 1
            if status == 200:
                bodies.append((job, body))

    spent = Counter()
    pool = db.open_pool(
        config.Settings.from_mapping({"DATABASE_URL": role_url, "CREDITS_APPLY_SCHEMA": "false"}),
        max_size=consumers,
    )
    users = sorted({s.user_id for s in model.subscriptions.values()})

    def consumer(n):
        crng = random.Random(rng.random())
        done = []
        for i in range(spends):
            if time.monotonic() > deadline:
                break
            if done and crng.random() < 0.1:  # a caller's retry of an earlier spend
                user, amount, ref = crng.choice(done)
            else:
                user, amount, ref = crng.choice(users), crng.randint(1, 50), f"c{n}-{i}"
            try:
                outcome = ledger.consume(pool, user, amount, ref, at=crng.choice(SPEND_TIMES))
            except ledger.InsufficientCredits:
                result = "refused, insufficient"
            except psycopg.Error as exc:
                result = f"error {type(exc).__name__}"
            else:
                result = "replayed" if outcome.replayed else "spent"
                if not outcome.replayed:
                    done.append((user, amount, ref))
            with lock:
                spent[result] += 1
                if result == "spent":
                    spent["credits spent"] += amount

    retries = RetryCounter()
    logging.getLogger("credits").addHandler(retries)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(trigger_threads + consumers) as executor:
            spending = [executor.submit(consumer, n) for n in range(consumers)]
            firing = [executor.submit(trigger, t) for t in plan]
            for f in firing:
                f.result()
            for f in spending:
                f.result()
    finally:
        logging.getLogger("credits").removeHandler(retries)
        pool.close()
    elapsed = time.monotonic() - started
    spent["deadlocks retried"] = retries.count

    # Quiet: every date once more and one expire, each alone; they must all answer 200.
    quiet = Counter()
    for job_date in [("grant", d) for d in RUN_DATES] + [("expire", None)]:
        before = len(bodies)
        trigger(job_date)
        quiet[f"{job_date[0]} {200 if len(bodies) > before else 'not 200'}"] += 1
    return {
        "triggers": {
            "fired": sum(statuses.values()),
            "by status": dict(sorted(statuses.items())),
            "distinct grant dates": len({d for _, d in plan if d}),
            "threads": trigger_threads,
        },
        "consumers": {"threads": consumers, **dict(sorted(spent.items()))},
        "seconds under load": round(elapsed, 1),
        "quiet runs": dict(quiet),
        "bodies": bodies,
        "violations": [f"a quiet run did not answer 200: {dict(quiet)}"]
        if quiet.get("grant not 200") or quiet.get("expire not 200")
        else [],
    }


class RetryCounter(logging.Handler):
    """Counts the spends retried after the server aborted them to break a deadlock."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        if "retrying" in record.getMessage():
            self.count += 1


def _check(owner_url, model, report):
    """What the database holds against what the responses and the rules say."""
    bodies = report.pop("bodies")
    violations = []
    for run_date in RUN_DATES:
        model.grant(run_date)
    with psycopg.connect(owner_url, row_factory=psycopg.rows.dict_row) as conn:

        def one(statement):
            return conn.execute(statement).fetchone()

        refs = {r["reference_id"] for r in conn.execute("SELECT reference_id FROM credits.batches")}
        if refs != set(model.batches):
            violations.append(
                f"batches differ from the rules: {len(refs)} held, {len(model.batches)} due"
            )
        granted = sum(b["results"]["successful"] for job, b in bodies if job == "grant")
        if granted != len(refs):
            violations.append(f"responses report {granted} batches granted, {len(refs)} exist")
        expired = one(
            "SELECT count(*) AS batches, coalesce(-sum(amount), 0) AS amount "
            "FROM credits.transactions WHERE type = 'expire'"
        )
        reported = [b["results"] for job, b in bodies if job == "expire"]
        if (
            sum(r["processedBatches"] for r in reported),
            sum(r["totalExpiredAmount"] for r in reported),
        ) != (expired["batches"], expired["amount"]):
            violations.append(f"expiry reported {reported} does not match the ledger {expired}")
        twice = one(
            "SELECT count(*) AS n FROM (SELECT batch_id FROM credits.transactions "
            "WHERE type <> 'consume' GROUP BY batch_id, type HAVING count(*) > 1) t"
        )
        if twice["n"]:
            violations.append(f"{twice['n']} batches granted or expired twice")
        # Per batch: what was granted, less what was spent and expired, is what remains.
        unbalanced = one(
            "SELECT count(*) AS n FROM credits.batches b JOIN (SELECT batch_id, sum(amount) AS "
            "total FROM credits.transactions GROUP BY batch_id) t ON t.batch_id = b.id "
            "WHERE t.total <> b.remaining"
        )
        if unbalanced["n"]:
            violations.append(f"{unbalanced['n']} batches whose ledger does not add up")
        consumed = one(
            "SELECT coalesce(-sum(amount), 0) AS amount FROM credits.transactions "
            "WHERE type = 'consume'"
        )
        if consumed["amount"] != report["consumers"].get("credits spent", 0):
            violations.append(
                f"consumers spent {report['consumers'].get('credits spent', 0)}, "
                f"the ledger says {consumed['amount']}"
            )
        left = one(
            "SELECT count(*) AS n FROM credits.batches WHERE status = 'active' "
            "AND expires_at <= now()"
        )
        if left["n"]:
            violations.append(f"{left['n']} batches past their date still active")
        negative = one("SELECT count(*) AS n FROM credits.balances WHERE balance < 0")["n"]
        if negative:
            violations.append(f"{negative} negative balances")
        rows, count = invariant_violations(owner_url)
        if count:
            violations.append(f"{count} users whose balance does not add up, e.g. {rows[:3]}")
        runs = conn.execute(
            "SELECT job, status, count(*) AS n FROM credits.job_runs GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        report["job runs"] = {f"{r['job']} {r['status']}": r["n"] for r in runs}
        report["database"] = {
            "batches": len(refs),
            "expired batches": expired["batches"],
            "credits expired": expired["amount"],
            "credits spent": consumed["amount"],
        }
    for result, n in report["consumers"].items():
        if result.startswith("error"):
            violations.append(f"{n} spends failed with {result}")
    for key, n in report["triggers"]["by status"].items():
        if key.split()[1] not in ("200", "409"):
            violations.append(f"{n} triggers answered {key}")
    return violations


if __name__ == "__main__":
    main()
