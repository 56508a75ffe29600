"""Chunked, time-budgeted runs: chunk boundaries, budget expiry, resuming, exact counts."""

from datetime import date, datetime, timezone

import pytest

from credits import config, jobs
from testing import SECRET
from testing.seeders import add_subscription

CHUNK = 3
# A budget spent by the first chunk: every call does exactly one chunk a stripe, then stops.
ONE_CHUNK = "0.001"
# Chunks of three keys, one stripe: every chunk boundary is known in advance.
ONE_STRIPE = {"CREDITS_CHUNK_SIZE": str(CHUNK), "CREDITS_PARALLEL_CHUNKS": "1"}


@pytest.fixture
def chunked(test_config):
    return config.Settings.from_mapping({**test_config, **ONE_STRIPE})


@pytest.fixture
def chunked_client(make_app):
    return make_app(**ONE_STRIPE).test_client()


def seed(sql_run, count, plan="pro", started_at="2026-01-10", user=lambda i: f"user-{i}"):
    for i in range(1, count + 1):
        add_subscription(sql_run, f"sub-{i}", user(i), plan, started_at)


@pytest.fixture
def expire_two_batches_a_user(pool, sql_run, add_plan):
    """users user-1 .. user-N, two batches each granted on 15 March, expired on 1 May."""
    add_plan("pro", 10, 30)

    def run(settings, users):
        for i in range(1, users + 1):
            for n in (1, 2):
                add_subscription(sql_run, f"sub-{i}-{n}", f"user-{i}", "pro", "2026-01-10")
        jobs.grant(pool, settings, date(2026, 3, 15))
        return jobs.expire(
            pool, settings, jobs.ExpireOptions(at=datetime(2026, 5, 1, tzinfo=timezone.utc))
        )

    return run


def granted(sql_run):
    return sql_run(
        "SELECT count(*) AS n, count(DISTINCT reference_id) AS refs FROM credits.batches"
    )[0]


def call(client, path):
    response = client.get(path, headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("count", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1])
def test_grant_over_any_number_of_chunks_grants_each_subscription_once(
    pool, chunked, sql_run, add_plan, count
):
    add_plan("pro", 10, 30)
    seed(sql_run, count)
    run = jobs.grant(pool, chunked, date(2026, 3, 15))
    expected = {"processed": count, "successful": count, "skipped": 0, "failed": 0}
    assert run.complete and run.results == expected and run.totals == expected
    assert granted(sql_run) == {"n": count, "refs": count}
    [progress] = sql_run("SELECT * FROM credits.job_progress")
    assert progress["complete"] and progress["totals"] == expected
    assert progress["after_key"] == (
        max(f"sub-{i}" for i in range(1, count + 1)) if count else None
    )


def test_subscription_ids_are_walked_in_their_own_sort_order(pool, chunked, sql_run, add_plan):
    """sub-10 sorts before sub-2: the keyset follows the database's order, missing none."""
    add_plan("pro", 10, 30)
    seed(sql_run, 12)
    jobs.grant(pool, chunked, date(2026, 3, 15))
    assert granted(sql_run) == {"n": 12, "refs": 12}


def test_budget_spent_stops_between_chunks_and_the_next_calls_carry_on(
    chunked_client, sql_run, add_plan
):
    add_plan("pro", 10, 30)
    seed(sql_run, 7)
    path = f"/api/jobs/credits/grant?date=2026-03-15&budget={ONE_CHUNK}"

    bodies = [call(chunked_client, path) for _ in range(3)]

    assert [b["complete"] for b in bodies] == [False, False, True]
    assert [b["results"]["successful"] for b in bodies] == [3, 3, 1]
    assert [b["totals"]["successful"] for b in bodies] == [3, 6, 7]
    assert bodies[-1]["totals"] == {"processed": 7, "successful": 7, "skipped": 0, "failed": 0}
    assert granted(sql_run) == {"n": 7, "refs": 7}
    runs = sql_run("SELECT status, results FROM credits.job_runs ORDER BY started_at")
    assert [r["status"] for r in runs] == ["partial", "partial", "succeeded"]
    assert [r["results"] for r in runs] == [b["results"] for b in bodies]


def test_a_call_after_a_finished_pass_starts_over_and_grants_nothing_twice(
    chunked_client, sql_run, add_plan
):
    add_plan("pro", 10, 30)
    seed(sql_run, 4)
    path = "/api/jobs/credits/grant?date=2026-03-15"
    assert call(chunked_client, path)["totals"]["successful"] == 4
    again = call(chunked_client, path)
    assert again["complete"] is True
    assert again["totals"] == {"processed": 4, "successful": 0, "skipped": 4, "failed": 0}
    assert granted(sql_run)["n"] == 4


def test_counts_stay_exact_when_a_subscription_arrives_between_calls(
    chunked_client, sql_run, add_plan, subscribe
):
    add_plan("pro", 10, 30)
    seed(sql_run, 6)
    path = f"/api/jobs/credits/grant?date=2026-03-15&budget={ONE_CHUNK}"
    first = call(chunked_client, path)  # sub-1, sub-2, sub-3 (text order: sub-1 < sub-2 ...)
    subscribe("sub-0", "early", "pro", "2026-01-10")  # before the pass's position: next pass
    subscribe("sub-9", "late", "pro", "2026-01-10")  # after it: this pass
    rest = [call(chunked_client, path) for _ in range(2)]
    assert rest[-1]["complete"] is True
    assert (
        rest[-1]["totals"]["successful"]
        == 7
        == first["results"]["successful"] + sum(b["results"]["successful"] for b in rest)
    )
    assert call(chunked_client, path.split("&")[0])["results"]["successful"] == 1  # sub-0


def test_a_failed_chunk_rolls_back_alone_and_the_next_run_redoes_it(
    make_app, sql_run, add_plan, refuse_ledger_entries
):
    add_plan("pro", 10, 30)
    seed(sql_run, 7)
    refuse_ledger_entries("user-5")
    chunked_client = make_app(**ONE_STRIPE).test_client()
    headers = {"Authorization": f"Bearer {SECRET}"}

    response = chunked_client.get("/api/jobs/credits/grant?date=2026-03-15", headers=headers)

    assert response.status_code == 500
    # The first chunk (sub-1, sub-2, sub-3) committed; the second (sub-4 .. sub-6) did not.
    assert sql_run("SELECT user_id FROM credits.batches ORDER BY 1") == [
        {"user_id": f"user-{i}"} for i in (1, 2, 3)
    ]
    [run] = sql_run("SELECT status, results, error FROM credits.job_runs")
    assert run["status"] == "failed" and "ledger refused user-5" in run["error"]
    assert run["results"] == {"processed": 3, "successful": 3, "skipped": 0, "failed": 0}

    refuse_ledger_entries.undo()
    body = call(chunked_client, "/api/jobs/credits/grant?date=2026-03-15")
    assert body["results"] == {"processed": 4, "successful": 4, "skipped": 0, "failed": 0}
    assert body["totals"] == {"processed": 7, "successful": 7, "skipped": 0, "failed": 0}
    assert granted(sql_run) == {"n": 7, "refs": 7}


def test_an_unfinished_pass_of_an_earlier_day_is_finished_first(chunked_client, sql_run, add_plan):
    """A January pass cut short must not lose January's grants when February starts."""
    add_plan("pro", 10, 30)
    seed(sql_run, 5)
    first = call(chunked_client, f"/api/jobs/credits/grant?date=2026-01-31&budget={ONE_CHUNK}")
    assert first["complete"] is False

    body = call(chunked_client, "/api/jobs/credits/grant?date=2026-02-01")

    assert body["complete"] is True
    periods = sql_run(
        "SELECT grant_period, count(*) AS n FROM credits.batches GROUP BY 1 ORDER BY 1"
    )
    assert periods == [{"grant_period": "2026-01", "n": 5}]  # none are due on 1 February yet
    assert body["results"]["successful"] == 2  # January's last two
    [january] = sql_run(
        "SELECT complete, totals FROM credits.job_progress WHERE run_date = '2026-01-31'"
    )
    assert january["complete"] and january["totals"]["successful"] == 5


def test_expire_chunks_by_user_and_counts_each_user_once(
    chunked, sql_run, expire_two_batches_a_user
):
    run = expire_two_batches_a_user(chunked, 7)
    expected = {"processedBatches": 14, "processedUsers": 7, "totalExpiredAmount": 140}
    assert run.complete and run.results == expected and run.totals == expected
    assert sql_run("SELECT sum(balance) AS s FROM credits.balances")[0]["s"] == 0


def test_resumed_expire_keeps_its_pass_cutoff_and_exact_user_count(
    pool, chunked, sql_run, add_plan, subscribe
):
    add_plan("pro", 10, 30)
    for i in range(1, 8):
        subscribe(f"sub-{i}", f"user-{i}", "pro", "2026-01-10")
    jobs.grant(pool, chunked, date(2026, 3, 31))  # batches expire 9 April
    # user-late holds a batch due at noon on 9 April, after the first call's cutoff.
    sql_run("""
        WITH b AS (
            INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining,
                                         expires_at)
            VALUES ('user-late', 'manual', 'late', 5, 5, '2026-04-09 12:00+00')
            RETURNING id
        )
        INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id)
        SELECT 'user-late', id, 'grant', 5, 'late' FROM b;
        INSERT INTO credits.balances (user_id, balance) VALUES ('user-late', 5);
    """)
    cutoff = datetime(2026, 4, 9, 6, tzinfo=timezone.utc)
    later = datetime(2026, 4, 9, 18, tzinfo=timezone.utc)  # the same day: carries on the pass

    calls = [jobs.expire(pool, chunked, jobs.ExpireOptions(at=cutoff, budget=0.001))]
    while not calls[-1].complete and len(calls) < 10:
        calls.append(jobs.expire(pool, chunked, jobs.ExpireOptions(at=later, budget=0.001)))

    assert [c.results["processedUsers"] for c in calls] == [3, 3, 1]
    assert calls[-1].totals == {
        "processedBatches": 7,
        "processedUsers": 7,
        "totalExpiredAmount": 70,
    }
    assert sql_run("SELECT user_id FROM credits.batches WHERE status = 'active'") == [
        {"user_id": "user-late"}
    ]
    # The next pass of the day starts at its own time and takes it.
    assert jobs.expire(pool, chunked, jobs.ExpireOptions(at=later)).results["processedUsers"] == 1


# Plain decimal numbers only: float() would take the last four (27, 270, 10, 8).
BAD_BUDGETS = ["soon", "0", "-1", "nan", "inf", "271", "1e9", "", "２７", "2_7_0", "1e1", " 8"]


@pytest.mark.parametrize("budget", BAD_BUDGETS)
def test_bad_budget_is_refused_and_nothing_runs(client, auth, sql_run, add_plan, budget):
    add_plan("pro", 10, 30)
    seed(sql_run, 2)
    for path in ("/api/jobs/credits/grant?date=2026-03-15&", "/api/jobs/credits/expire?"):
        response = client.get(f"{path}budget={budget}", headers=auth)
        assert response.status_code == 400
        assert "budget must be a number of seconds" in response.get_json()["error"]
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0
    assert granted(sql_run)["n"] == 0


def test_largest_budget_is_accepted(client, auth):
    assert call(client, "/api/jobs/credits/expire?budget=270")["complete"] is True


def test_time_limits_agree():
    """The default budget fits a 10 s limit; the worker outlives the largest budget."""
    import runpy

    settings = config.Settings.from_mapping({})
    gunicorn = runpy.run_path("gunicorn.conf.py")
    assert settings.time_budget < 10
    assert settings.max_budget + config.CHUNK_MARGIN == gunicorn["timeout"] == 300


def test_run_left_running_by_a_dead_process_is_marked_abandoned(client, auth, sql_run, add_plan):
    sql_run(
        "INSERT INTO credits.job_runs (id, job, status, run_date) "
        "VALUES (gen_random_uuid(), 'grant', 'running', '2026-03-15')"
    )
    call(client, "/api/jobs/credits/grant?date=2026-03-15")
    rows = sql_run("SELECT status, error FROM credits.job_runs ORDER BY started_at")
    assert [r["status"] for r in rows] == ["abandoned", "succeeded"]
    assert "stopped before the run finished" in rows[0]["error"]


@pytest.fixture
def two_stripes(test_config):
    return config.Settings.from_mapping(
        {**test_config, "CREDITS_CHUNK_SIZE": str(CHUNK), "CREDITS_PARALLEL_CHUNKS": "2"}
    )


def test_two_stripes_grant_each_subscription_once_with_exact_totals(
    pool, two_stripes, sql_run, add_plan
):
    add_plan("pro", 10, 30)
    seed(sql_run, 20)
    run = jobs.grant(pool, two_stripes, date(2026, 3, 15))
    expected = {"processed": 20, "successful": 20, "skipped": 0, "failed": 0}
    assert run.complete and run.results == expected and run.totals == expected
    assert granted(sql_run) == {"n": 20, "refs": 20}
    stripes = sql_run("SELECT * FROM credits.job_progress ORDER BY stripe")
    assert len(stripes) == 2 and all(s["complete"] for s in stripes)
    # The stripes meet without a gap: the first ends where the second starts.
    assert stripes[0]["upper_key"] is not None and stripes[1]["upper_key"] is None
    assert stripes[0]["after_key"] == stripes[0]["upper_key"]
    assert [s["totals"]["processed"] for s in stripes] == [10, 10]


def test_two_stripes_resume_over_budgeted_calls_with_exact_totals(
    pool, two_stripes, sql_run, add_plan
):
    add_plan("pro", 10, 30)
    seed(sql_run, 20)
    calls = [jobs.grant(pool, two_stripes, date(2026, 3, 15), jobs.GrantOptions(budget=0.001))]
    while not calls[-1].complete and len(calls) < 20:
        calls.append(
            jobs.grant(pool, two_stripes, date(2026, 3, 15), jobs.GrantOptions(budget=0.001))
        )
    assert len(calls) > 1 and calls[-1].complete
    assert sum(c.results["successful"] for c in calls) == 20
    assert calls[-1].totals == {"processed": 20, "successful": 20, "skipped": 0, "failed": 0}
    assert granted(sql_run) == {"n": 20, "refs": 20}


def test_two_stripes_expire_counts_each_user_once(two_stripes, sql_run, expire_two_batches_a_user):
    run = expire_two_batches_a_user(two_stripes, 20)
    expected = {"processedBatches": 40, "processedUsers": 20, "totalExpiredAmount": 400}
    assert run.complete and run.results == expected and run.totals == expected
    assert len(sql_run("SELECT * FROM credits.job_progress WHERE job = 'expire'")) == 2


def test_a_failing_stripe_stops_the_run_and_the_next_run_finishes_exactly(
    pool, two_stripes, sql_run, add_plan, refuse_ledger_entries
):
    add_plan("pro", 10, 30)
    seed(sql_run, 20)
    refuse_ledger_entries("user-9")
    with pytest.raises(Exception, match="ledger refused user-9"):
        jobs.grant(pool, two_stripes, date(2026, 3, 15))
    [failed] = sql_run("SELECT status, results FROM credits.job_runs")
    assert failed["status"] == "failed"
    assert failed["results"]["successful"] == granted(sql_run)["n"] < 20

    refuse_ledger_entries.undo()
    run = jobs.grant(pool, two_stripes, date(2026, 3, 15))
    assert run.results["successful"] + failed["results"]["successful"] == 20
    assert run.totals == {"processed": 20, "successful": 20, "skipped": 0, "failed": 0}
    assert granted(sql_run) == {"n": 20, "refs": 20}
