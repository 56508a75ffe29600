"""Overlapping runs, parallel spending, a run that fails half-way, a database that goes away."""

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import psycopg
import pytest
from psycopg.rows import dict_row

from app import create_app
from credits import config, db, jobs, ledger, schema
from testing import SECRET
from testing.databases import connections_refused, migrate, scratch_database
from testing.dumps import schema_dump
from testing.seeders import add_subscribers

GRANT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('credits.job.grant', 0))"


def run_together(n, task):
    """Run task(i) in n threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(n)

    def start(i):
        barrier.wait()
        try:
            return task(i)
        except Exception as exc:  # the caller asserts on what each thread got
            return exc

    with ThreadPoolExecutor(n) as executor:
        return list(executor.map(start, range(n)))


def test_overlapping_grant_runs_grant_each_subscription_once(pool, settings, sql_run, add_plan):
    add_plan("pro", 10, 30)
    add_subscribers(sql_run, 5000)
    run_date = date(2026, 3, 15)

    outcomes = run_together(6, lambda i: jobs.grant(pool, settings, run_date))

    runs = [o for o in outcomes if isinstance(o, jobs.JobRun)]
    refused = [o for o in outcomes if isinstance(o, jobs.JobAlreadyRunning)]
    assert len(runs) + len(refused) == 6, outcomes
    assert sum(r.results["successful"] for r in runs) == 5000
    for r in runs:
        assert r.results["processed"] == 5000
        assert r.results["successful"] + r.results["skipped"] == 5000
    totals = sql_run(
        "SELECT count(*) AS batches, count(DISTINCT reference_id) AS refs FROM credits.batches"
    )[0]
    assert totals == {"batches": 5000, "refs": 5000}
    assert sql_run("SELECT sum(balance) AS s FROM credits.balances")[0]["s"] == 50000


def test_uniqueness_alone_stops_a_double_grant_without_the_job_lock(
    database_url, sql_run, add_plan
):
    """Two grant statements racing outside the lock: the second waits, then inserts nothing."""
    add_plan("pro", 10, 30)
    add_subscribers(sql_run, 200)
    params = {
        "run_date": date(2026, 3, 15),
        "eligible_statuses": ["active"],
        "catch_up_from": None,
        "job_id": uuid.uuid4(),
        "failures_kept": 0,
        "after_key": None,
        "last_key": sql_run("SELECT max(id) AS id FROM credits.subscriptions")[0]["id"],
        "keys": None,
    }
    statement = db.queries["grant_due_subscriptions"]
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as first:
        assert first.execute(statement, params).fetchone()["successful"] == 200
        second_result = {}

        def second():
            with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
                second_result.update(conn.execute(statement, params).fetchone())

        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive(), "the second grant should wait on the first one's batches"
        first.commit()
        racer.join(timeout=10)
    assert second_result["successful"] == 0
    assert second_result["skipped"] == 200
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == 200


def test_grant_while_another_run_holds_the_lock_answers_409(
    client, auth, database_url, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    with psycopg.connect(database_url) as holder:
        holder.execute(GRANT_LOCK)
        response = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth)
        assert response.status_code == 409
        body = response.get_json()
        assert body["success"] is False and body["error"] == "a grant run is already in progress"
        # The other job has its own lock.
        assert client.get("/api/jobs/credits/expire", headers=auth).status_code == 200
    [run] = sql_run("SELECT * FROM credits.job_runs WHERE job = 'grant'")
    assert (str(run["id"]), run["status"]) == (body["jobId"], "failed")
    assert "already in progress" in run["error"]
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == 0
    response = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth)
    assert response.get_json()["results"]["successful"] == 1


def _spend(pool, user_id, amount, reference_id):
    """ledger.spend of amount credits: its answer, a dict."""
    return ledger.spend(pool, ledger.SpendRequest(user_id, reference_id, amount=amount))


def test_parallel_spending_never_goes_below_zero(pool, settings, sql_run, add_plan, subscribe):
    add_plan("pro", 150, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))

    outcomes = run_together(8, lambda i: _spend(pool, "alice", 30, f"order-{i}"))

    spent = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, ledger.InsufficientCredits)]
    assert (len(spent), len(refused)) == (5, 3), outcomes
    assert ledger.balance(pool, "alice")[0] == 0


def test_parallel_retries_of_one_spend_spend_once(pool, settings, sql_run, add_plan, subscribe):
    add_plan("pro", 150, 36500)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))

    outcomes = run_together(6, lambda i: _spend(pool, "alice", 40, "order-1"))

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert sorted(o["replayed"] for o in outcomes) == [False] + [True] * 5
    assert ledger.balance(pool, "alice")[0] == 110


def test_grant_expire_and_spending_together_keep_every_balance_right(
    pool, settings, sql_run, add_plan
):
    add_plan("pro", 100, 30)  # February's and March's batches are past their date
    add_plan("keeps", 40, 36500)
    add_subscribers(sql_run, 300)
    sql_run(
        "INSERT INTO credits.subscriptions SELECT 'keep-' || i, 'user-' || i, 'keeps', 'active', "
        "'2026-01-10', NULL FROM generate_series(1, 300) AS i"
    )
    for day in ("2026-02-15", "2026-03-15"):
        jobs.grant(pool, settings, date.fromisoformat(day))
    rng = random.Random(7)
    spends = [(f"user-{rng.randint(1, 300)}", rng.randint(1, 30)) for _ in range(240)]

    def task(i):
        if i == 0:
            return jobs.expire(pool, settings)
        if i == 1:
            return jobs.grant(pool, settings, date(2026, 4, 15))
        results = []
        for n, (user, amount) in enumerate(spends[i - 2 :: 6]):
            try:
                results.append(_spend(pool, user, amount, f"spend-{i}-{n}"))
            except ledger.InsufficientCredits as exc:
                results.append(exc)
        return results

    outcomes = run_together(8, task)

    assert isinstance(outcomes[0], jobs.JobRun), outcomes[0]
    assert isinstance(outcomes[1], jobs.JobRun), outcomes[1]
    for spender in outcomes[2:]:
        assert isinstance(spender, list), spender
    assert sql_run("SELECT min(balance) AS m FROM credits.balances")[0]["m"] >= 0
    # A user a spend held was skipped and is tried again by the next call, as a platform makes
    # it: after those calls nothing past its date is left active, and no batch expired twice.
    for finish in (
        lambda: jobs.grant(pool, settings, date(2026, 4, 15)),
        lambda: jobs.expire(pool, settings),
    ):
        for _ in range(5):
            if finish().complete:
                break
    assert (
        sql_run(
            "SELECT count(*) AS n FROM credits.batches WHERE status = 'active' AND expires_at < %s",
            (datetime(2026, 4, 1, tzinfo=timezone.utc),),
        )[0]["n"]
        == 0
    )
    assert (
        sql_run(
            "SELECT count(*) AS n FROM (SELECT batch_id FROM credits.transactions "
            "WHERE type = 'expire' GROUP BY batch_id HAVING count(*) > 1) AS twice"
        )[0]["n"]
        == 0
    )


def test_failed_run_rolls_back_whole_and_says_why(
    client, auth, sql_run, add_plan, subscribe, refuse_ledger_entries
):
    add_plan("pro", 100, 30)
    for sub_id, user in (("s1", "alice"), ("s2", "mallory"), ("s3", "zoe")):
        subscribe(sub_id, user, "pro", "2026-01-10")
    refuse_ledger_entries("mallory")

    response = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth)

    assert response.status_code == 500
    body = response.get_json()
    assert body == {"success": False, "jobId": body["jobId"], "error": "internal error"}
    assert "Traceback" not in response.get_data(as_text=True)
    for table in ("batches", "transactions", "balances"):
        assert sql_run(f"SELECT count(*) AS n FROM credits.{table}")[0]["n"] == 0, table
    [run] = sql_run("SELECT * FROM credits.job_runs")
    assert (str(run["id"]), run["status"]) == (body["jobId"], "failed")
    assert "ledger refused mallory" in run["error"]
    assert run["results"] == {"processed": 0, "successful": 0, "skipped": 0, "failed": 0}

    refuse_ledger_entries.undo()
    response = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth)
    assert response.get_json()["results"]["successful"] == 3


@pytest.mark.parametrize("route", ["/api/jobs/credits/grant", "/api/jobs/credits/expire"])
def test_database_down_answers_503_and_the_service_recovers(
    client, auth, server_url, database_url, route
):
    assert client.get(route, headers=auth).status_code == 200
    with connections_refused(server_url, database_url):
        response = client.get(route, headers=auth)
    assert response.status_code == 503
    body = response.get_json()
    assert body == {"success": False, "jobId": body["jobId"], "error": "database unavailable"}
    uuid.UUID(body["jobId"])
    # The pool reconnects with backoff: the service answers again within seconds.
    deadline = time.monotonic() + 30
    while client.get(route, headers=auth).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"


def test_service_with_an_unreachable_database_starts_and_answers_503():
    unreachable = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    app = create_app(
        {"DATABASE_URL": unreachable, "CRON_SECRET": SECRET, "CREDITS_DB_TIMEOUT": "1"}
    )
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 503
        response = client.get(
            "/api/jobs/credits/grant", headers={"Authorization": f"Bearer {SECRET}"}
        )
        assert response.status_code == 503
        assert response.get_json()["error"] == "database unavailable"
    finally:
        app.extensions["credits"]["pool"].close()


def test_schema_applies_again_and_from_several_workers_at_once(server_url):
    with scratch_database(server_url, "credits_empty") as url:
        settings = config.Settings.from_mapping({"DATABASE_URL": url})
        pools = [db.open_pool(settings, max_size=1) for _ in range(5)]
        try:
            outcomes = run_together(4, lambda i: db.prepare(pools[i]))
            for outcome in outcomes:
                assert not isinstance(outcome, Exception), outcome
            db.prepare(pools[4])  # and once more, on the finished schema
        finally:
            for pool in pools:
                pool.close()
        # Whole, and as one applier alone makes it.
        with scratch_database(server_url, "credits_alone") as alone:
            migrate(alone)
            assert schema_dump(url) == schema_dump(alone)


def test_run_that_loses_a_deadlock_is_retried(
    pool, settings, sql_run, alice_expired, lose_deadlocks, caplog
):
    lose_deadlocks("expire", db.ATTEMPTS - 1)
    run = jobs.expire(pool, settings)
    assert run.results["totalExpiredAmount"] == 100
    assert "A chunk of the expire run: DeadlockDetected, retrying" in caplog.text
    [row] = sql_run("SELECT status FROM credits.job_runs WHERE job = 'expire'")
    assert row["status"] == "succeeded"


def test_run_that_keeps_losing_deadlocks_fails_whole_after_bounded_retries(
    pool, settings, sql_run, alice_expired, lose_deadlocks
):
    lose_deadlocks("expire", db.ATTEMPTS)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        jobs.expire(pool, settings)
    [row] = sql_run("SELECT status, error FROM credits.job_runs WHERE job = 'expire'")
    assert row["status"] == "failed" and "DeadlockDetected" in row["error"]
    assert sql_run("SELECT status, remaining FROM credits.batches") == [
        {"status": "active", "remaining": 100}
    ]
    assert sql_run("SELECT last_value FROM credits.lost_deadlocks")[0]["last_value"] == db.ATTEMPTS


@pytest.fixture
def alice_expired(pool, settings, add_plan, subscribe):
    """alice holds one batch of 100 credits that is past its date."""
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))


def test_schema_applies_while_the_tables_are_in_use(database_url):
    """A worker starting (it applies the migrations) during a run waits on no lock a run holds,
    nor does the first migration run again by a host's tool."""
    with psycopg.connect(database_url) as busy:
        for table in (
            "batches",
            "transactions",
            "balances",
            "job_runs",
            "job_progress",
            "subscription_grants",
        ):
            busy.execute(f"LOCK TABLE credits.{table} IN ROW EXCLUSIVE MODE")
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as starting:
            starting.execute("SET lock_timeout = '2s'")
            assert schema.migrate(starting) == []
            starting.execute(schema.migrations()[0].sql)
