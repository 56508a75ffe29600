"""A refusal's numbers in its DETAIL, as a JSON object, for a driver to read without parsing
the message: spendable and asked (CR001), what a reference spent or granted (CR002), the balance
and the cap (CR003)."""

import json

import psycopg
import pytest

from credits import ledger


@pytest.fixture
def alice(sql_run):
    """alice holds 40 credits of a promotion; the balance cap is 100; a pack of 500 exists."""
    sql_run("INSERT INTO credits.packages VALUES ('large', 500, 0, 365)")
    sql_run("INSERT INTO credits.limits VALUES (true, 100)")
    sql_run("SELECT credits.grant_credits('alice', 40, 'promotion', 'promo-1')")
    sql_run("SELECT credits.spend('alice', 10, 'ai-1')")


@pytest.mark.parametrize(
    "call, code, detail",
    [
        (
            "credits.spend('alice', 60, 'ai-2')",
            "CR001",
            {"user_id": "alice", "spendable": 30, "asked": 60},
        ),
        (
            "credits.spend('alice', 11, 'ai-1')",
            "CR002",
            {"reference_id": "ai-1", "spent": 10, "asked": 11},
        ),
        (
            "credits.grant_credits('alice', 41, 'promotion', 'promo-1')",
            "CR002",
            {"reference_id": "promo-1", "granted": 40, "asked": 41},
        ),
        (
            "credits.buy_package('alice', 'large', 'pay-1')",
            "CR003",
            {"user_id": "alice", "balance": 30, "asked": 500, "max_balance": 100},
        ),
    ],
)
def test_a_refusal_carries_its_numbers_as_json_in_detail(database_url, alice, call, code, detail):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(f"SELECT {call}")
    assert refused.value.sqlstate == code
    assert json.loads(refused.value.diag.message_detail) == detail


def test_the_python_library_hands_the_detail_on(pool, alice):
    with pytest.raises(ledger.InsufficientCredits) as refused:
        ledger.spend(pool, ledger.SpendRequest("alice", "ai-2", amount=60))
    assert refused.value.detail == {"user_id": "alice", "spendable": 30, "asked": 60}
    with pytest.raises(ledger.UnknownPackage) as unknown:
        ledger.buy(pool, "alice", "huge", "pay-2")
    assert unknown.value.detail is None  # a refusal without numbers
