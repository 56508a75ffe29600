"""The app's interface through SQL, as an app in any language calls it (docs/API.md): each
function's rules, its refusals (a documented SQLSTATE, nothing changed) and its replays."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from credits import jobs, schema

MARCH_20 = datetime(2026, 3, 20, tzinfo=timezone.utc)


@pytest.fixture
def catalog(sql_run):
    """A pack, two services, a sign-up bonus and a cap, as load-plans writes them."""
    sql_run("INSERT INTO credits.packages VALUES ('starter', 500, 50, 365), ('big', 5000, 0, NULL)")
    sql_run("INSERT INTO credits.services VALUES ('chat', 2), ('image', 10)")
    sql_run("INSERT INTO credits.registration VALUES (true, 25, 30)")
    sql_run("INSERT INTO credits.limits VALUES (true, 5500)")


def call(sql_run, statement, *params):
    """One function call's JSON answer."""
    [row] = sql_run(f"SELECT {statement} AS answer", params)
    return row["answer"]


def state(sql_run):
    """Everything a call may change."""
    return [
        sql_run(f"SELECT * FROM credits.{table} ORDER BY 1")
        for table in ("batches", "transactions", "balances")
    ]


def refused(sql_run, sqlstate, statement, *params):
    """The call raises sqlstate and changes nothing; its message."""
    before = state(sql_run)
    with pytest.raises(psycopg.Error) as caught:
        call(sql_run, statement, *params)
    assert caught.value.sqlstate == sqlstate, caught.value
    assert state(sql_run) == before
    return caught.value.diag.message_primary


def entries(sql_run, user_id):
    return [
        (e["type"], e["amount"], e["balance_after"])
        for e in sql_run(
            "SELECT * FROM credits.transactions WHERE user_id = %s ORDER BY id", (user_id,)
        )
    ]


def test_a_one_off_grant_is_a_batch_with_its_ledger_entry_and_balance(sql_run):
    answer = call(
        sql_run,
        "credits.grant_credits(%s, %s, %s, %s, validity_days => 10)",
        "alice",
        40,
        "promotion",
        "promo-1",
    )
    assert answer["amount"] == 40 and answer["balance"] == 40 and not answer["replayed"]
    [batch] = sql_run("SELECT * FROM credits.batches")
    assert (batch["source"], batch["remaining"], batch["reference_id"]) == (
        "promotion",
        40,
        "promo-1",
    )
    expires = batch["expires_at"] - batch["granted_at"]
    assert timedelta(days=10) - timedelta(seconds=5) < expires <= timedelta(days=10)
    assert entries(sql_run, "alice") == [("grant", 40, 40)]


def test_a_one_off_grant_replayed_answers_the_same_batch(sql_run):
    first = call(sql_run, "credits.grant_credits(%s, %s, %s, %s)", "alice", 40, "bonus", "r1")
    again = call(sql_run, "credits.grant_credits(%s, %s, %s, %s)", "alice", 40, "bonus", "r1")
    assert again["batch_id"] == first["batch_id"] and again["replayed"]
    assert again["balance"] == 40 and first["expires_at"] is None
    assert entries(sql_run, "alice") == [("grant", 40, 40)]


@pytest.mark.parametrize(
    "user_id, amount, source",
    [("alice", 41, "bonus"), ("bob", 40, "bonus"), ("alice", 40, "promotion")],
)
def test_a_reference_granted_once_is_refused_for_another_grant(sql_run, user_id, amount, source):
    call(sql_run, "credits.grant_credits(%s, %s, %s, %s)", "alice", 40, "bonus", "r1")
    message = refused(
        sql_run, "CR002", "credits.grant_credits(%s, %s, %s, %s)", user_id, amount, source, "r1"
    )
    assert "already used" in message


def test_a_grant_expiring_at_a_given_time(sql_run, now):
    at = now + timedelta(days=3)
    answer = call(
        sql_run,
        "credits.grant_credits(%s, %s, %s, %s, expires_at => %s)",
        "alice",
        5,
        "adjustment",
        "adj-1",
        at,
    )
    assert datetime.fromisoformat(answer["expires_at"]) == at


BAD_ARGUMENTS = [
    ("22004", "credits.grant_credits(NULL, 5, 'bonus', 'r')", "user_id must not be null"),
    ("22023", "credits.grant_credits('', 5, 'bonus', 'r')", "user_id must not be empty"),
    ("22023", "credits.grant_credits('a', 0, 'bonus', 'r')", "amount must be a whole number"),
    ("22023", "credits.grant_credits('a', -5, 'bonus', 'r')", "above 0, got -5"),
    ("22003", "credits.grant_credits('a', 2147483648, 'bonus', 'r')", "at most 2147483647"),
    ("22004", "credits.grant_credits('a', NULL, 'bonus', 'r')", "amount must not be null"),
    ("22023", "credits.grant_credits('a', 5, 'gift', 'r')", "source must be one of"),
    ("22004", "credits.grant_credits('a', 5, 'bonus', NULL)", "reference_id must not be null"),
    ("22001", "credits.grant_credits('a', 5, 'bonus', repeat('r', 3000))", "at most 200"),
    ("22001", "credits.grant_credits(repeat('u', 201), 5, 'bonus', 'r')", "user_id must be at"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'r' || chr(10))", "control characters"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'subscription:s1:2026-03')", "start"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'registration:a')", "must not start"),
    ("22003", "credits.grant_credits('a', 5, 'bonus', 'r', 2147483647)", "at most 36500"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'r', 0)", "validity_days must be"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'r', 3, now() + interval '1 day')", "not"),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'r', NULL, now() - interval '1 day')", ""),
    ("22023", "credits.grant_credits('a', 5, 'bonus', 'r', metadata => '[1]')", "JSON object"),
    (
        "22001",
        "credits.grant_credits('a', 5, 'bonus', 'r', metadata => "
        "jsonb_build_object('k', repeat('x', 5000)))",
        "metadata must be at most",
    ),
    ("22004", "credits.buy_package('a', NULL, 'pay-1')", "package_id must not be null"),
    ("22001", "credits.buy_package('a', 'starter', repeat('p', 3000))", "at most 200"),
    ("22004", "credits.grant_registration_bonus(NULL)", "user_id"),
    ("22023", "credits.spend('a', 0, 'r')", "amount must be a whole number above 0"),
    ("22023", "credits.spend('a', -1, 'r')", "above 0"),
    ("22003", "credits.spend('a', 9999999999, 'r')", "at most 2147483647"),
    ("22001", "credits.spend('a', 1, repeat('r', 3000))", "reference_id must be at most 200"),
    ("22023", "credits.spend('a', 1, '  ')", "reference_id must not be empty"),
    ("22023", "credits.spend_service('a', 'chat', 0, 'r')", "quantity must be"),
    ("22003", "credits.spend_service('a', 'chat', 2000000000, 'r')", "amount must be at most"),
    ("22004", "credits.spend_service('a', 'chat', NULL, 'r')", "quantity must not be null"),
    ("22004", "credits.reverse_spend('a', NULL)", "reference_id must not be null"),
    ("22001", "credits.void_grant(repeat('r', 201))", "at most 200"),
    ("22023", "credits.account('')", "user_id must not be empty"),
]


@pytest.mark.parametrize("sqlstate, statement, message", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_with_their_code_and_change_nothing(
    sql_run, catalog, sqlstate, statement, message
):
    call(sql_run, "credits.grant_credits('a', 100, 'bonus', 'seed')")
    assert message in refused(sql_run, sqlstate, statement)


@pytest.mark.parametrize(
    "limit, before, sqlstate",
    [(0, None, "22023"), (101, None, "22003"), (None, None, "22023"), (10, 0, "22023")],
)
def test_bad_statement_page_is_refused(sql_run, limit, before, sqlstate):
    with pytest.raises(psycopg.Error) as caught:
        sql_run("SELECT * FROM credits.statement('a', %s, %s)", (limit, before))
    assert caught.value.sqlstate == sqlstate


def test_a_pack_grants_its_credits_and_bonus_once_per_purchase(sql_run, catalog, now):
    answer = call(sql_run, "credits.buy_package(%s, %s, %s)", "alice", "starter", "pay-1")
    assert (answer["credits"], answer["bonus"], answer["amount"]) == (500, 50, 550)
    assert answer["balance"] == 550 and answer["source"] == "purchase"
    expires = datetime.fromisoformat(answer["expires_at"]) - now
    assert timedelta(days=365) <= expires < timedelta(days=365, minutes=1)  # from the purchase
    again = call(sql_run, "credits.buy_package(%s, %s, %s)", "alice", "starter", "pay-1")
    assert again["replayed"] and again["batch_id"] == answer["batch_id"]
    assert entries(sql_run, "alice") == [("grant", 550, 550)]
    [entry] = sql_run("SELECT metadata FROM credits.transactions")
    assert entry["metadata"] == {"package_id": "starter", "credits": 500, "bonus": 50}


def test_an_unknown_pack_is_refused(sql_run, catalog):
    message = refused(sql_run, "CR004", "credits.buy_package('alice', 'huge', 'pay-1')")
    assert message == "unknown package 'huge'"


def test_a_pack_above_the_cap_is_refused_and_can_be_asked_about_first(sql_run, catalog):
    call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")
    ask = call(sql_run, "credits.can_buy_package('alice', 'big')")
    assert ask == {
        "allowed": False,
        "user_id": "alice",
        "package_id": "big",
        "amount": 5000,
        "balance": 550,
        "max_balance": 5500,
    }
    assert call(sql_run, "credits.can_buy_package('alice', 'starter')")["allowed"] is True
    message = refused(sql_run, "CR003", "credits.buy_package('alice', 'big', 'pay-2')")
    assert message == "user 'alice' holds 550 credits; 5000 more would pass the cap of 5500"
    # The refused purchase reference is not burnt, and a granted pack replays above the cap.
    call(sql_run, "credits.spend('alice', 100, 'order-1')")
    assert not call(sql_run, "credits.buy_package('alice', 'big', 'pay-2')")["replayed"]
    assert call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")["replayed"]


def test_the_sign_up_bonus_is_granted_once_whatever_is_replayed(sql_run, catalog):
    first = call(sql_run, "credits.grant_registration_bonus('alice')")
    assert (first["amount"], first["source"], first["replayed"]) == (25, "registration", False)
    sql_run("UPDATE credits.registration SET credits = 99")
    again = call(sql_run, "credits.grant_registration_bonus('alice')")
    assert again["replayed"] and again["amount"] == 25 and again["balance"] == 25
    assert entries(sql_run, "alice") == [("grant", 25, 25)]


def test_no_sign_up_bonus_configured_is_refused(sql_run):
    refused(sql_run, "CR007", "credits.grant_registration_bonus('alice')")


def grant(sql_run, user_id, amount, reference, days=None):
    return call(
        sql_run,
        "credits.grant_credits(%s, %s, 'promotion', %s, %s)",
        user_id,
        amount,
        reference,
        days,
    )


def test_spending_draws_soonest_expiring_first_and_never_expiring_last(sql_run):
    grant(sql_run, "alice", 50, "forever")
    grant(sql_run, "alice", 30, "late", 60)
    grant(sql_run, "alice", 20, "soon", 5)
    answer = call(sql_run, "credits.spend('alice', 60, 'order-1', '{\"job\": 7}')")
    assert [(d["amount"]) for d in answer["draws"]] == [20, 30, 10]
    assert answer["balance"] == 40 and not answer["replayed"]
    assert entries(sql_run, "alice")[3:] == [
        ("consume", -20, 80),
        ("consume", -30, 50),
        ("consume", -10, 40),
    ]
    metadata = sql_run("SELECT DISTINCT metadata FROM credits.transactions WHERE type='consume'")
    assert metadata == [{"metadata": {"job": 7}}]


def test_spending_by_service_costs_its_price_times_quantity(sql_run, catalog):
    grant(sql_run, "alice", 100, "g1")
    answer = call(sql_run, "credits.spend_service('alice', 'image', 3, 'img-1')")
    assert (answer["amount"], answer["service"], answer["balance"]) == (30, "image", 70)
    [entry] = sql_run("SELECT service FROM credits.transactions WHERE type = 'consume'")
    assert entry["service"] == "image"
    assert refused(sql_run, "CR005", "credits.spend_service('alice', 'video', 1, 'v')") == (
        "unknown service 'video'"
    )


def test_spending_never_draws_a_batch_past_its_date(sql_run):
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 30, 'bonus', 'old', 10)", MARCH_20)
    grant(sql_run, "alice", 5, "new")
    message = refused(sql_run, "CR001", "credits.spend('alice', 6, 'order-1')")
    assert message == "user 'alice' has 5 spendable credits, 6 asked for"
    answer = call(sql_run, "credits.spend_at(%s, 'alice', 35, NULL, NULL, 'order-1')", MARCH_20)
    assert answer["balance"] == 0


def test_short_credits_are_refused_whole(sql_run):
    grant(sql_run, "alice", 10, "g1")
    refused(sql_run, "CR001", "credits.spend('alice', 11, 'order-1')")
    refused(sql_run, "CR001", "credits.spend('nobody', 1, 'order-1')")
    assert call(sql_run, "credits.spend('alice', 10, 'order-1')")["balance"] == 0


def test_a_spend_replayed_answers_the_first_and_another_amount_is_refused(sql_run):
    grant(sql_run, "alice", 10, "g1")
    first = call(sql_run, "credits.spend('alice', 4, 'order-1')")
    again = call(sql_run, "credits.spend('alice', 4, 'order-1')")
    assert again["replayed"] and again["balance"] == 6 and again["draws"][0]["amount"] == 4
    assert first["draws"][0]["batch_id"] == again["draws"][0]["batch_id"]
    message = refused(sql_run, "CR002", "credits.spend('alice', 5, 'order-1')")
    assert message == "reference_id 'order-1' already spent 4 credits of user 'alice', not 5"


def test_a_spend_in_the_apps_transaction_rolls_back_with_it(database_url, sql_run):
    grant(sql_run, "alice", 10, "g1")
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE public.ai_calls (id text)")
        conn.commit()
        conn.execute("INSERT INTO public.ai_calls VALUES ('call-1')")
        conn.execute("SELECT credits.spend('alice', 4, 'call-1')")
        conn.rollback()
    assert sql_run("SELECT count(*) AS n FROM public.ai_calls")[0]["n"] == 0
    assert entries(sql_run, "alice") == [("grant", 10, 10)]


def test_a_reversed_spend_goes_back_to_the_batches_it_came_from(sql_run):
    grant(sql_run, "alice", 20, "soon", 5)
    grant(sql_run, "alice", 50, "forever")
    call(sql_run, "credits.spend('alice', 30, 'job-1')")
    answer = call(sql_run, "credits.reverse_spend('alice', 'job-1')")
    assert (answer["returned"], answer["lapsed"], answer["balance"]) == (30, 0, 70)
    remaining = sql_run("SELECT reference_id, remaining, status FROM credits.batches ORDER BY id")
    assert [(b["remaining"], b["status"]) for b in remaining] == [(20, "active"), (50, "active")]
    again = call(sql_run, "credits.reverse_spend('alice', 'job-1')")
    assert again["replayed"] and again["returned"] == 30 and again["balance"] == 70
    assert entries(sql_run, "alice")[-2:] == [("reverse", 20, 60), ("reverse", 10, 70)]
    # The spend's reference stays spent: a replay of the spend says it was reversed.
    replay = call(sql_run, "credits.spend('alice', 30, 'job-1')")
    assert replay["replayed"] and replay["reversed"] and replay["balance"] == 70


def test_credits_whose_batch_expired_since_do_not_come_back(pool, settings, sql_run):
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 20, 'bonus', 'short', 10)", MARCH_20)
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 50, 'bonus', 'forever')", MARCH_20)
    call(sql_run, "credits.spend_at(%s, 'alice', 30, NULL, NULL, 'job-1')", MARCH_20)
    jobs.expire(
        pool, settings, jobs.ExpireOptions(at=MARCH_20 + timedelta(days=11))
    )  # nothing was left in "short"
    answer = call(sql_run, "credits.reverse_spend('alice', 'job-1')")
    assert (answer["returned"], answer["lapsed"], answer["balance"]) == (10, 20, 50)
    assert entries(sql_run, "alice")[-3:] == [
        ("reverse", 20, 60),
        ("lapse", -20, 40),
        ("reverse", 10, 50),
    ]
    [short] = sql_run("SELECT * FROM credits.batches WHERE reference_id = 'short'")
    assert (short["remaining"], short["status"]) == (0, "consumed")


def test_a_reversal_and_a_void_write_their_metadata_on_each_entry(pool, settings, sql_run):
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 20, 'bonus', 'short', 10)", MARCH_20)
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 50, 'bonus', 'forever')", MARCH_20)
    call(sql_run, "credits.spend_at(%s, 'alice', 30, NULL, NULL, 'job-1')", MARCH_20)
    jobs.expire(pool, settings, jobs.ExpireOptions(at=MARCH_20 + timedelta(days=11)))
    refused(sql_run, "22023", "credits.reverse_spend('alice', 'job-1', '[1]')")
    refused(sql_run, "22023", "credits.void_grant('forever', '\"x\"')")
    call(sql_run, "credits.reverse_spend('alice', 'job-1', '{\"by\": \"ann\"}')")
    call(sql_run, "credits.void_grant('forever', '{\"by\": \"vic\"}')")
    written = sql_run(
        "SELECT type, metadata FROM credits.transactions WHERE type IN ('reverse', 'lapse', 'void')"
        " ORDER BY id"
    )
    assert [(e["type"], e["metadata"]) for e in written] == [
        ("reverse", {"by": "ann"}),
        ("lapse", {"by": "ann"}),
        ("reverse", {"by": "ann"}),
        ("void", {"by": "vic"}),
    ]


def test_reversing_an_unknown_spend_is_refused(sql_run):
    grant(sql_run, "alice", 10, "g1")
    assert refused(sql_run, "CR006", "credits.reverse_spend('alice', 'nope')") == (
        "user 'alice' has no spend with reference_id 'nope'"
    )
    call(sql_run, "credits.spend('alice', 4, 'order-1')")
    refused(sql_run, "CR006", "credits.reverse_spend('bob', 'order-1')")


def test_a_voided_pack_takes_back_what_remains_and_reports_what_was_spent(sql_run, catalog):
    call(sql_run, "credits.buy_package('alice', 'starter', 'pay-1')")
    grant(sql_run, "alice", 10, "g1", 1)  # expires first: spent first
    call(sql_run, "credits.spend('alice', 110, 'order-1')")
    answer = call(sql_run, "credits.void_grant('pay-1')")
    assert (answer["voided"], answer["spent"], answer["expired"]) == (450, 100, 0)
    assert answer["balance"] == 0 and answer["user_id"] == "alice"
    [batch] = sql_run("SELECT * FROM credits.batches WHERE reference_id = 'pay-1'")
    assert (batch["remaining"], batch["status"]) == (0, "voided")
    assert entries(sql_run, "alice")[-1] == ("void", -450, 0)
    again = call(sql_run, "credits.void_grant('pay-1')")
    assert again["replayed"] and again["voided"] == 450 and again["spent"] == 100
    # A spend reversed after the void: what came from the pack does not come back.
    reversal = call(sql_run, "credits.reverse_spend('alice', 'order-1')")
    assert (reversal["returned"], reversal["lapsed"]) == (10, 100)
    refused(sql_run, "CR002", "credits.buy_package('alice', 'big', 'pay-1')")


def test_voiding_an_unknown_or_a_subscription_grant_is_refused(
    pool, settings, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    refused(sql_run, "CR006", "credits.void_grant('pay-9')")
    refused(sql_run, "CR008", "credits.void_grant('subscription:s1:2026-03')")


def test_the_account_shows_balance_spendable_next_expiry_and_next_grant(
    sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    add_plan("addon", 7, None)
    subscribe("s1", "alice", "pro", "2026-01-31")  # due on the last day of shorter months
    subscribe("s2", "alice", "addon", "2026-02-28T10:00:00")
    subscribe("s3", "alice", "pro", "2026-01-05", status="canceled")
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 20, 'bonus', 'a', 10)", MARCH_20)
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 5, 'bonus', 'b', 20)", MARCH_20)
    call(sql_run, "credits.grant_credits_at(%s, 'alice', 3, 'bonus', 'c')", MARCH_20)
    at = datetime(2026, 4, 2, tzinfo=timezone.utc)  # "a" is past its date, not yet expired
    account = call(sql_run, "credits.account_at(%s, 'alice')", at)
    assert account == {
        "user_id": "alice",
        "balance": 28,
        "spendable": 8,
        "next_expiry": {"amount": 5, "expires_at": "2026-04-09T00:00:00+00:00"},
        "next_grant": {"date": "2026-04-28", "amount": 7},
    }
    feb = call(
        sql_run, "credits.account_at(%s, 'alice')", datetime(2026, 2, 27, tzinfo=timezone.utc)
    )
    assert feb["next_grant"] == {"date": "2026-02-28", "amount": 107}  # 31st clamped, and s2
    nobody = call(sql_run, "credits.account('nobody')")
    assert nobody == {
        "user_id": "nobody",
        "balance": 0,
        "spendable": 0,
        "next_expiry": None,
        "next_grant": None,
    }


def test_the_account_skips_a_grant_already_made_and_a_subscription_that_ends(
    pool, settings, sql_run, add_plan, subscribe
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "pro", "2026-01-10", ends_at="2026-05-01")
    jobs.grant(pool, settings, date(2026, 4, 10))
    at = datetime(2026, 4, 10, 12, tzinfo=timezone.utc)
    assert call(sql_run, "credits.account_at(%s, 'alice')", at)["next_grant"] == {
        "date": "2026-05-10",
        "amount": 100,
    }
    assert call(sql_run, "credits.account_at(%s, 'bob')", at)["next_grant"] is None


def test_the_statement_pages_newest_first_by_cursor(sql_run):
    for n in range(1, 8):
        grant(sql_run, "alice", n, f"g{n}")
    call(sql_run, "credits.spend('alice', 3, 'order-1', '{\"k\": 1}')")
    grant(sql_run, "bob", 1, "b1")
    pages, before = [], None
    while True:
        page = sql_run("SELECT * FROM credits.statement('alice', 3, %s)", (before,))
        if not page:
            break
        pages.append([(e["type"], e["amount"], e["balance_after"]) for e in page])
        before = page[-1]["entry_id"]
    assert pages == [
        [("consume", -2, 25), ("consume", -1, 27), ("grant", 7, 28)],
        [("grant", 6, 21), ("grant", 5, 15), ("grant", 4, 10)],
        [("grant", 3, 6), ("grant", 2, 3), ("grant", 1, 1)],
    ]
    [newest] = sql_run("SELECT * FROM credits.statement('alice', 1)")
    assert (newest["reference_id"], newest["metadata"], newest["source"]) == (
        "order-1",
        {"k": 1},
        "promotion",
    )


def test_the_jobs_write_the_balance_after_each_entry(pool, settings, sql_run, add_plan, subscribe):
    add_plan("pro", 100, 30)
    add_plan("addon", 50, 20)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "alice", "addon", "2026-01-10")
    grant(sql_run, "alice", 5, "g1")
    jobs.grant(pool, settings, date(2026, 3, 15))
    jobs.expire(pool, settings, jobs.ExpireOptions(at=datetime(2026, 5, 1, tzinfo=timezone.utc)))
    assert entries(sql_run, "alice") == [
        ("grant", 5, 5),
        ("grant", 100, 105),
        ("grant", 50, 155),
        ("expire", -100, 55),
        ("expire", -50, 5),
    ]


@pytest.mark.breaks_invariant
def test_verify_finds_an_entry_whose_balance_after_is_wrong(sql_run, run_cli):
    grant(sql_run, "alice", 5, "g1")
    grant(sql_run, "alice", 6, "g2")
    sql_run("UPDATE credits.transactions SET balance_after = 6 WHERE reference_id = 'g2'")
    result = run_cli("verify")
    assert result.exit_code == 1
    [user] = json.loads(result.stdout)["users"]
    assert user == {
        "user_id": "alice",
        "balance": 11,
        "ledger_total": 11,
        "active_remaining": 11,
        "misstated_entries": 1,
    }


def test_a_spend_retried_while_the_first_is_in_flight_replays_it(database_url, sql_run):
    grant(sql_run, "alice", 10, "g1")
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as retry:
        first.execute("SELECT credits.spend('alice', 4, 'order-1')")  # not committed yet
        with ThreadPoolExecutor(1) as executor:
            waiting = executor.submit(
                lambda: retry.execute("SELECT credits.spend('alice', 4, 'order-1')").fetchone()
            )
            time.sleep(0.5)  # the retry waits on alice's balance row
            assert not waiting.done()
            first.commit()
            [answer] = waiting.result(timeout=30)
        retry.commit()
    assert answer["replayed"] and answer["balance"] == 6
    assert entries(sql_run, "alice") == [("grant", 10, 10), ("consume", -4, 6)]


def test_the_schema_upgrades_a_database_of_the_previous_release(sql_run):
    # The previous release's ledger: three entry types, no balance_after, one grant or expire
    # entry per batch and type; batches without the voided status, nor the events' trigger.
    sql_run(
        """
        DROP TRIGGER transactions_events ON credits.transactions;
        DROP INDEX credits.transactions_once_per_batch_key;
        CREATE UNIQUE INDEX transactions_grant_expire_once_key
            ON credits.transactions (batch_id, type) WHERE type <> 'consume';
        ALTER TABLE credits.transactions
            DROP COLUMN balance_after, DROP COLUMN service, DROP COLUMN metadata,
            DROP CONSTRAINT transactions_type_check, DROP CONSTRAINT transactions_amount_sign,
            ADD CONSTRAINT transactions_type_check CHECK (type IN ('grant', 'consume', 'expire')),
            ADD CONSTRAINT transactions_amount_sign
                CHECK ((type = 'grant') = (amount > 0) AND amount <> 0);
        ALTER TABLE credits.batches DROP CONSTRAINT batches_status_check,
            ADD CONSTRAINT batches_status_check
                CHECK (status IN ('active', 'consumed', 'expired'));
        INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining)
        VALUES ('alice', 'subscription', 'subscription:s1:2026-03', 10, 10);
        INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id)
        VALUES ('alice', 1, 'grant', 10, 'subscription:s1:2026-03');
        INSERT INTO credits.balances VALUES ('alice', 10);
        """
    )
    first = schema.migrations()[0]  # its in-place rules, run by hand on a database that had it
    sql_run(first.sql)
    sql_run(first.sql)  # and again: nothing left to change
    for n in (1, 2):  # two spends from the one batch, both reversed
        call(sql_run, "credits.spend('alice', 2, %s)", f"order-{n}")
        call(sql_run, "credits.reverse_spend('alice', %s)", f"order-{n}")
    assert entries(sql_run, "alice")[0] == ("grant", 10, None)  # written before the column
    assert entries(sql_run, "alice")[-1] == ("reverse", 2, 10)
    assert call(sql_run, "credits.grant_credits('alice', 5, 'bonus', 'b1')")["balance"] == 15
    assert call(sql_run, "credits.void_grant('b1')")["voided"] == 5
