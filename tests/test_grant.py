"""The grant job over HTTP: who is due, what they get, exactly once."""

import base64
import os
import re
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest


def grant(client, auth, run_date=None, method="get", **params):
    if run_date is not None:
        params["date"] = run_date
    response = getattr(client, method)("/api/jobs/credits/grant", headers=auth, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def batches(sql_run, user_id=None):
    return sql_run(
        "SELECT * FROM credits.batches WHERE %(u)s::text IS NULL OR user_id = %(u)s ORDER BY id",
        {"u": user_id},
    )


def balance(sql_run, user_id):
    rows = sql_run("SELECT balance FROM credits.balances WHERE user_id = %s", (user_id,))
    return rows[0]["balance"] if rows else 0


def due_on(client, auth, subscribe, add_plan, started_at, run_date, **subscription):
    """Whether a subscription started at started_at is granted when the job runs on run_date."""
    add_plan("pro", 100, 30)
    subscribe("sub", "alice", "pro", started_at, **subscription)
    return grant(client, auth, run_date)["results"]["successful"] == 1


def test_response_has_the_documented_shape(client, auth, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    body = grant(client, auth, "2026-03-15")
    assert list(body) == ["success", "jobId", "date", "duration", "results", "complete", "totals"]
    assert body["success"] is True and body["complete"] is True
    assert body["totals"] == body["results"]  # the whole pass fitted in this call
    assert uuid.UUID(body["jobId"])
    assert body["date"] == "2026-03-15"
    assert isinstance(body["duration"], int) and body["duration"] >= 0
    assert body["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}


def test_grant_creates_batch_ledger_entry_and_balance(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10T08:30:00")
    body = grant(client, auth, "2026-03-15")

    [batch] = batches(sql_run, "alice")
    assert batch["reference_id"] == "subscription:s1:2026-03"
    assert batch["grant_period"] == "2026-03"
    assert batch["source"] == "subscription"
    assert (batch["amount"], batch["remaining"], batch["status"]) == (100, 100, "active")
    # due day 10 March 00:00 UTC + 30 days
    assert batch["expires_at"] == datetime(2026, 4, 9, tzinfo=timezone.utc)
    [entry] = sql_run("SELECT * FROM credits.transactions")
    assert (entry["user_id"], entry["batch_id"], entry["type"], entry["amount"]) == (
        "alice",
        batch["id"],
        "grant",
        100,
    )
    assert entry["reference_id"] == "subscription:s1:2026-03"
    assert str(entry["job_id"]) == body["jobId"]
    assert balance(sql_run, "alice") == 100


def test_plan_without_validity_grants_credits_that_never_expire(
    client, auth, sql_run, add_plan, subscribe
):
    add_plan("forever", 50, None)
    subscribe("s1", "alice", "forever", "2026-01-10")
    grant(client, auth, "2026-03-15")
    assert batches(sql_run, "alice")[0]["expires_at"] is None


def test_rerun_on_the_same_day_skips_what_was_granted(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "pro", "2026-01-11")
    first = grant(client, auth, "2026-03-15")
    second = grant(client, auth, "2026-03-15")
    third = grant(client, auth, "2026-03-20")
    assert first["results"] == {"processed": 2, "successful": 2, "skipped": 0, "failed": 0}
    assert second["results"] == {"processed": 2, "successful": 0, "skipped": 2, "failed": 0}
    assert third["results"] == {"processed": 2, "successful": 0, "skipped": 2, "failed": 0}
    assert len(batches(sql_run)) == 2
    assert balance(sql_run, "alice") == 100


def test_a_missed_day_is_caught_up_later_in_the_month(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    assert grant(client, auth, "2026-03-09")["results"]["processed"] == 0
    assert grant(client, auth, "2026-03-25")["results"]["successful"] == 1
    assert batches(sql_run, "alice")[0]["grant_period"] == "2026-03"


def test_earlier_months_are_not_back_filled_unless_asked(
    client, auth, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    grant(client, auth, "2026-04-15")
    assert [b["grant_period"] for b in batches(sql_run, "alice")] == ["2026-04"]
    grant(client, auth, "2026-02-15")  # back-fill February, asked for by date
    assert sorted(b["grant_period"] for b in batches(sql_run, "alice")) == ["2026-02", "2026-04"]


def test_subscription_is_due_on_its_start_day(client, auth, subscribe, add_plan):
    assert due_on(client, auth, subscribe, add_plan, "2026-03-15T23:00:00", "2026-03-15")


def test_subscription_is_not_due_before_it_starts(client, auth, subscribe, add_plan):
    assert not due_on(client, auth, subscribe, add_plan, "2026-03-16", "2026-03-15")


def test_subscription_started_this_month_is_due_after_its_start_day(
    client, auth, subscribe, add_plan
):
    assert due_on(client, auth, subscribe, add_plan, "2026-03-20", "2026-03-31")


def test_subscription_is_not_due_before_its_anniversary_day(client, auth, subscribe, add_plan):
    assert not due_on(client, auth, subscribe, add_plan, "2026-01-20", "2026-03-19")


def test_start_day_is_taken_in_utc(client, auth, subscribe, add_plan):
    # 23:30 on the 19th in New York is the 20th in UTC.
    assert not due_on(client, auth, subscribe, add_plan, "2026-01-19T23:30:00-05:00", "2026-03-19")


def test_subscription_started_on_31st_is_due_on_30_april(client, auth, subscribe, add_plan):
    assert due_on(client, auth, subscribe, add_plan, "2026-01-31", "2026-04-30")


def test_subscription_started_on_31st_is_not_due_on_29_april(client, auth, subscribe, add_plan):
    assert not due_on(client, auth, subscribe, add_plan, "2026-01-31", "2026-04-29")


def test_subscription_started_on_31st_is_due_on_28_february(client, auth, subscribe, add_plan):
    assert due_on(client, auth, subscribe, add_plan, "2025-12-31", "2026-02-28")


def test_subscription_started_on_31st_is_due_on_29_february_in_leap_year(
    client, auth, subscribe, add_plan
):
    assert due_on(client, auth, subscribe, add_plan, "2023-12-31", "2024-02-29")


def test_subscription_started_on_31st_is_not_due_on_28_february_in_leap_year(
    client, auth, subscribe, add_plan
):
    assert not due_on(client, auth, subscribe, add_plan, "2023-12-31", "2024-02-28")


def test_subscription_started_on_29_february_is_due_on_28_february_next_year(
    client, auth, subscribe, add_plan
):
    assert due_on(client, auth, subscribe, add_plan, "2024-02-29", "2025-02-28")


def test_clamped_due_day_sets_the_expiry(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-31")
    grant(client, auth, "2026-04-30")
    assert batches(sql_run, "alice")[0]["expires_at"] == datetime(2026, 5, 30, tzinfo=timezone.utc)


def test_yearly_subscription_is_granted_every_month(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro-yearly", 100, 30)
    subscribe("s1", "alice", "pro-yearly", "2025-06-05")
    for month in range(1, 13):
        grant(client, auth, f"2025-{month:02d}-28")
    assert [b["grant_period"] for b in batches(sql_run, "alice")] == [
        f"2025-{m:02d}" for m in range(6, 13)
    ]


def test_subscription_ended_at_its_due_day_is_not_due(client, auth, subscribe, add_plan):
    assert not due_on(
        client, auth, subscribe, add_plan, "2026-01-10", "2026-03-15", ends_at="2026-03-10"
    )


def test_subscription_ending_after_its_due_day_is_due(client, auth, subscribe, add_plan):
    assert due_on(
        client,
        auth,
        subscribe,
        add_plan,
        "2026-01-10",
        "2026-03-15",
        ends_at="2026-03-10T00:00:01",
    )


def test_only_active_subscriptions_are_due_by_default(client, auth, add_plan, subscribe):
    add_plan("pro", 100, 30)
    for status in ("trialing", "canceled", "past_due", "paused"):
        subscribe(f"s-{status}", f"user-{status}", "pro", "2026-01-10", status=status)
    assert grant(client, auth, "2026-03-15")["results"]["processed"] == 0


def test_eligible_statuses_setting_adds_trialing(make_app, add_plan, subscribe, auth):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10", status="trialing")
    subscribe("s2", "bob", "pro", "2026-01-10", status="canceled")
    app = make_app(CREDITS_ELIGIBLE_STATUSES="active, trialing")
    body = grant(app.test_client(), auth, "2026-03-15")
    assert body["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}


def test_one_user_with_two_subscriptions_gets_both(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    add_plan("addon", 25, None)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "addon", "2026-02-01")
    assert grant(client, auth, "2026-03-15")["results"]["successful"] == 2
    assert balance(sql_run, "alice") == 125


def test_missing_plan_fails_that_subscription_and_blocks_nobody(
    client, auth, sql_run, add_plan, subscribe, caplog
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "retired-plan", "2026-01-10")
    subscribe("s3", "carol", "pro", "2026-01-10")
    body = grant(client, auth, "2026-03-15")
    assert body["results"] == {"processed": 3, "successful": 2, "skipped": 0, "failed": 1}
    assert [b["user_id"] for b in batches(sql_run)] == ["alice", "carol"]
    out = caplog.text
    assert "plan 'retired-plan' does not exist (e.g. subscription 's2')" in out
    # Once its plan exists, the next run grants it.
    add_plan("retired-plan", 10, None)
    body = grant(client, auth, "2026-03-16")
    assert body["results"] == {"processed": 3, "successful": 1, "skipped": 2, "failed": 0}


def test_job_run_is_recorded_with_its_results(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    body = grant(client, auth, "2026-03-15")
    [run] = sql_run("SELECT * FROM credits.job_runs")
    assert str(run["id"]) == body["jobId"]
    assert (run["job"], run["status"], run["run_date"]) == ("grant", "succeeded", date(2026, 3, 15))
    assert run["results"] == body["results"]
    assert run["finished_at"] >= run["started_at"] and run["error"] is None


def test_logs_say_when_the_job_starts_and_completes(client, auth, add_plan, subscribe, caplog):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    job_id = grant(client, auth, "2026-03-15")["jobId"]
    out = caplog.text
    assert f"[Credits Grant Job {job_id}] Starting daily grant process" in out
    assert re.search(
        rf"\[Credits Grant Job {job_id}\] Completed in \d+ms\. Processed: 1, Successful: 1", out
    )
    assert "test-secret" not in out


def test_dry_run_counts_and_writes_nothing(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "pro", "2026-01-10")
    subscribe("s3", "carol", "gone", "2026-01-10")
    grant(client, auth, "2026-03-15")
    subscribe("s4", "dave", "pro", "2026-01-10")
    tables = ("batches", "transactions", "balances", "job_runs")
    before = {t: sql_run(f"SELECT * FROM credits.{t} ORDER BY 1") for t in tables}

    body = grant(client, auth, "2026-03-15", dryRun="true")

    assert body["dryRun"] is True
    assert body["results"] == {"processed": 4, "successful": 1, "skipped": 2, "failed": 1}
    assert {t: sql_run(f"SELECT * FROM credits.{t} ORDER BY 1") for t in tables} == before
    # The real run then does what the dry run said.
    assert grant(client, auth, "2026-03-15")["results"] == body["results"]


def test_dry_run_false_is_a_real_run(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    body = grant(client, auth, "2026-03-15", dryRun="false")
    assert "dryRun" not in body and len(batches(sql_run)) == 1


def test_post_runs_the_grant_as_qstash_sends_it(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    assert grant(client, auth, "2026-03-15", method="post")["results"]["successful"] == 1


def test_without_a_date_the_run_date_is_today_in_utc(
    client, auth, sql_run, add_plan, subscribe, today
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", today.replace(day=1).isoformat())
    body = grant(client, auth)
    assert body["date"] == today.isoformat()
    assert batches(sql_run, "alice")[0]["grant_period"] == today.strftime("%Y-%m")


@pytest.mark.parametrize(
    "query, message",
    [
        ({"date": "2026-3-15"}, "YYYY-MM-DD"),
        ({"date": "20260315"}, "YYYY-MM-DD"),
        ({"date": "2026-03-15T00:00:00"}, "YYYY-MM-DD"),
        ({"date": "2026-02-30"}, "not a calendar date"),
        ({"date": "2026-13-01"}, "not a calendar date"),
        ({"date": ""}, "YYYY-MM-DD"),
        ({"date": "yesterday"}, "YYYY-MM-DD"),
        ({"dryRun": "yes"}, "true or false"),
        ({"dryrun": "true"}, "unknown parameter"),
        ({"dat": "2026-03-01"}, "unknown parameter"),
        ({"secret": "x"}, "unknown parameter"),
    ],
)
def test_bad_parameters_get_400_and_change_nothing(
    client, auth, sql_run, add_plan, subscribe, query, message
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    response = client.get("/api/jobs/credits/grant", headers=auth, query_string=query)
    assert response.status_code == 400
    assert response.get_json()["success"] is False
    assert message in response.get_json()["error"]
    assert sql_run("SELECT count(*) AS n FROM credits.batches")[0]["n"] == 0
    assert sql_run("SELECT count(*) AS n FROM credits.job_runs")[0]["n"] == 0


def test_future_date_gets_400(client, auth, sql_run, today):
    tomorrow = today + timedelta(days=1)
    response = client.get(f"/api/jobs/credits/grant?date={tomorrow}", headers=auth)
    assert response.status_code == 400
    assert "future" in response.get_json()["error"]


def test_repeated_date_parameter_gets_400(client, auth):
    response = client.get("/api/jobs/credits/grant?date=2026-03-15&date=2026-02-15", headers=auth)
    assert response.status_code == 400
    assert "more than once" in response.get_json()["error"]


def test_subscriptions_may_be_a_view_over_the_host_apps_table(make_app, sql_run, add_plan, auth):
    add_plan("pro", 100, 30)
    sql_run("DROP TABLE credits.subscriptions")
    sql_run(
        "CREATE TABLE public.app_subscriptions (sub_id bigint PRIMARY KEY, customer text, "
        "price text, state text, created timestamptz, canceled timestamptz)"
    )
    sql_run(
        "INSERT INTO public.app_subscriptions VALUES "
        "(1, 'alice', 'pro', 'active', '2026-01-10', NULL), "
        "(2, 'bob', 'pro', 'canceled', '2026-01-10', '2026-02-01')"
    )
    sql_run(
        "CREATE VIEW credits.subscriptions AS SELECT sub_id::text AS id, customer AS user_id, "
        "price AS plan_id, state AS status, created AS started_at, canceled AS ends_at "
        "FROM public.app_subscriptions"
    )
    app = make_app()  # applying the schema again leaves the view alone
    body = grant(app.test_client(), auth, "2026-03-15")
    assert body["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert batches(sql_run, "alice")[0]["reference_id"] == "subscription:1:2026-03"


def periods(sql_run, user_id):
    return sorted(b["grant_period"] for b in batches(sql_run, user_id))


@pytest.fixture
def alice_on_the_31st(add_plan, subscribe):
    """alice's subscription s1 to pro (100 credits for 30 days), started on 31 January 2024."""
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2024-01-31")


def test_a_missed_month_end_is_caught_up_the_next_month(client, auth, sql_run, alice_on_the_31st):
    grant(client, auth, "2024-01-30")  # the call of the 31st never came
    body = grant(client, auth, "2024-02-01")
    assert body["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}
    [batch] = batches(sql_run, "alice")
    assert batch["reference_id"] == "subscription:s1:2024-01"
    # Due on 31 January: it expires 30 days from then, as if granted that day.
    assert batch["expires_at"] == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert balance(sql_run, "alice") == 100


def test_an_outage_across_a_month_end_loses_nothing_and_grants_nothing_twice(
    client, auth, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    for day in (29, 30, 31):
        subscribe(f"jan-{day}", f"user-{day}", "pro", f"2024-01-{day}")
    for day in (1, 2, 3):
        subscribe(f"dec-{day}", f"user-{day}", "pro", f"2023-12-{day:02d}")
    grant(client, auth, "2024-01-29")  # then no call from the 30th to the 2nd
    body = grant(client, auth, "2024-02-03")
    # Due since the 29th's run: 30 and 31 January, 1, 2 and 3 February.
    assert body["results"] == {"processed": 5, "successful": 5, "skipped": 0, "failed": 0}
    assert grant(client, auth, "2024-02-04")["results"]["successful"] == 0
    assert {u: periods(sql_run, f"user-{u}") for u in (29, 30, 31, 1, 2, 3)} == {
        29: ["2024-01"],
        30: ["2024-01"],
        31: ["2024-01"],
        1: ["2024-01", "2024-02"],
        2: ["2024-01", "2024-02"],
        3: ["2024-01", "2024-02"],
    }
    assert sql_run("SELECT count(*) AS n FROM credits.transactions")[0]["n"] == 9


def test_a_first_deployment_grants_no_month_before_it(client, auth, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2023-12-31")
    body = grant(client, auth, "2024-02-01")  # no grant ever completed before
    assert body["results"] == {"processed": 0, "successful": 0, "skipped": 0, "failed": 0}
    assert batches(sql_run, "alice") == []


def test_an_outage_longer_than_the_catch_up_window_is_caught_up_within_it(
    make_app, auth, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2024-01-28")
    subscribe("s2", "bob", "pro", "2024-01-31")
    client = make_app(CREDITS_CATCH_UP_DAYS="3").test_client()
    grant(client, auth, "2024-01-27")
    grant(client, auth, "2024-02-02")  # looks back 3 days: to 30 January
    assert periods(sql_run, "alice") == [] and periods(sql_run, "bob") == ["2024-01"]


def test_a_back_fill_before_the_last_run_covers_its_own_month_only(
    make_app, auth, sql_run, alice_on_the_31st
):
    client = make_app(CREDITS_CATCH_UP_DAYS="3").test_client()
    grant(client, auth, "2024-01-27")
    grant(client, auth, "2024-02-10")  # too late to catch up 31 January
    body = grant(client, auth, "2024-02-01")  # a back-fill: February only
    assert body["results"]["processed"] == 0
    assert periods(sql_run, "alice") == []


def test_no_catch_up_window_grants_each_run_its_own_month_only(
    make_app, auth, sql_run, alice_on_the_31st
):
    client = make_app(CREDITS_CATCH_UP_DAYS="0").test_client()
    grant(client, auth, "2024-01-30")
    assert grant(client, auth, "2024-02-01")["results"]["processed"] == 0


def test_dry_run_after_a_missed_month_end_says_what_the_run_does(client, auth, alice_on_the_31st):
    grant(client, auth, "2024-01-30")
    dry = grant(client, auth, "2024-02-01", dryRun="true")
    assert dry["results"] == {"processed": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert grant(client, auth, "2024-02-01")["results"] == dry["results"]


def test_a_plan_whose_expiry_is_out_of_range_fails_its_subscriptions_only(
    client, auth, sql_run, add_plan, subscribe, caplog
):
    add_plan("pro", 100, 30)
    add_plan("endless", 100, 2147483647)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "endless", "2026-01-10")
    subscribe("s3", "carol", "pro", "2026-01-10")
    expected = {"processed": 3, "successful": 2, "skipped": 0, "failed": 1}
    assert grant(client, auth, "2026-03-15", dryRun="true")["results"] == expected
    assert grant(client, auth, "2026-03-15")["results"] == expected
    assert [b["user_id"] for b in batches(sql_run)] == ["alice", "carol"]
    assert (
        "1 subscription(s) cannot be granted: plan 'endless' has validity_days 2147483647, "
        "above 36500 (e.g. subscription 's2')" in caplog.text
    )


@pytest.mark.parametrize("validity_days", [40_000, 3_000_000])
def test_a_plan_written_with_more_than_36500_validity_days_fails_its_subscriptions(
    client, auth, sql_run, add_plan, subscribe, validity_days
):
    """Such an expiry (year 10240) was granted, and then the statement could not be read."""
    add_plan("pro", 100, 30)
    add_plan("long", 100, validity_days)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "long", "2026-01-10")
    expected = {"processed": 2, "successful": 1, "skipped": 0, "failed": 1}
    assert grant(client, auth, "2026-03-15")["results"] == expected
    assert [b["user_id"] for b in batches(sql_run)] == ["alice"]
    assert sql_run("SELECT * FROM credits.statement('bob')") == []


@pytest.mark.parametrize("too_long", ["user_id", "id"])
def test_an_id_too_long_for_the_indexes_fails_that_subscription_only(
    client, auth, sql_run, add_plan, subscribe, caplog, too_long
):
    # Random, so the index cannot compress it below its 2,700-byte limit.
    long_id = base64.b64encode(os.urandom(3000)).decode()
    add_plan("pro", 100, 30)
    if too_long == "id":  # a host's table (or view) need not index its ids
        sql_run("ALTER TABLE credits.subscriptions DROP CONSTRAINT subscriptions_pkey")
    for n in range(1, 6):
        user_id = long_id if too_long == "user_id" and n == 3 else f"user-{n}"
        subscribe(long_id if too_long == "id" and n == 3 else f"s{n}", user_id, "pro", "2026-01-10")
    expected = {"processed": 5, "successful": 4, "skipped": 0, "failed": 1}
    assert grant(client, auth, "2026-03-15", dryRun="true")["results"] == expected
    assert grant(client, auth, "2026-03-15")["results"] == expected
    assert sorted(b["user_id"] for b in batches(sql_run)) == [
        "user-1",
        "user-2",
        "user-4",
        "user-5",
    ]
    assert "its id or user id is longer than 1000 bytes" in caplog.text
    assert long_id not in caplog.text


@pytest.mark.parametrize(
    "column, reason", [("user_id", "it has no user id"), ("plan_id", "plan NULL does not exist")]
)
def test_a_subscription_missing_a_value_fails_alone(
    client, auth, sql_run, add_plan, subscribe, caplog, column, reason
):
    # A host's view may hand over NULLs its table would refuse.
    sql_run(f"ALTER TABLE credits.subscriptions ALTER {column} DROP NOT NULL")
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "pro", "2026-01-10")
    sql_run(f"UPDATE credits.subscriptions SET {column} = NULL WHERE id = 's2'")
    expected = {"processed": 2, "successful": 1, "skipped": 0, "failed": 1}
    assert grant(client, auth, "2026-03-15", dryRun="true")["results"] == expected
    assert grant(client, auth, "2026-03-15")["results"] == expected
    assert [b["user_id"] for b in batches(sql_run)] == ["alice"]
    assert f"cannot be granted: {reason} (e.g. subscription 's2')" in caplog.text
