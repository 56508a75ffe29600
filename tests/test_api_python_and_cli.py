"""The app's interface from Python (credits.ledger) and from the command line: JSON on stdout,
exit status 0 when done or replayed, 1 when refused, 2 for bad input."""

import json
import secrets
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from credits import jobs, ledger

EXAMPLE_PLANS = Path(__file__).resolve().parent.parent / "plans.example.toml"
MARCH_20 = datetime(2026, 3, 20, tzinfo=timezone.utc)


@pytest.fixture
def loaded(run_cli):
    result = run_cli("load-plans", str(EXAMPLE_PLANS))
    assert result.exit_code == 0, result.output


def answer(result, exit_code=0):
    """The command's JSON answer; stdout holds nothing else."""
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def test_a_user_s_life_from_the_command_line(run_cli, loaded):
    assert answer(run_cli("bonus", "alice"))["balance"] == 50
    assert answer(run_cli("bonus", "alice"))["replayed"] is True
    bought = answer(run_cli("buy", "alice", "large", "--reference", "pay-1"))
    assert (bought["amount"], bought["balance"]) == (5500, 5550)
    added = answer(
        run_cli(
            "add",
            "alice",
            "7",
            "--source",
            "promotion",
            "--reference",
            "promo-1",
            "--expires-at",
            "2099-01-01",
        )
    )
    assert added["expires_at"] == "2099-01-01T00:00:00+00:00"
    spent = answer(
        run_cli(
            "spend",
            "alice",
            "--service",
            "image",
            "--quantity",
            "3",
            "--reference",
            "ai-1",
            "--metadata",
            '{"prompt": "a cat"}',
        )
    )
    assert (spent["amount"], spent["balance"], spent["service"]) == (30, 5527, "image")
    assert answer(run_cli("spend", "alice", "5", "--reference", "ai-2"))["balance"] == 5522
    assert answer(run_cli("reverse", "alice", "--reference", "ai-1"))["returned"] == 30
    voided = answer(run_cli("void", "pay-1"))
    assert (voided["voided"], voided["spent"], voided["balance"]) == (5500, 0, 52)
    account = answer(run_cli("account", "alice"))
    assert (account["balance"], account["spendable"]) == (52, 52)
    assert account["next_expiry"]["amount"] == 45  # the bonus, 5 of it spent
    page = answer(run_cli("statement", "alice", "--limit", "3"))
    assert [e["type"] for e in page["entries"]] == ["void", "reverse", "consume"]
    rest = answer(run_cli("statement", "alice", "--before", str(page["next_cursor"])))
    assert [e["type"] for e in rest["entries"]] == ["consume", "grant", "grant", "grant"]
    assert rest["next_cursor"] is None
    assert run_cli("verify").exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["spend", "alice", "99999", "--reference", "r"], "has 59 spendable credits"),
        (["spend", "alice", "--service", "music", "--reference", "r"], "unknown service"),
        (["buy", "alice", "huge", "--reference", "p"], "unknown package 'huge'"),
        (["reverse", "alice", "--reference", "nope"], "no spend with reference_id"),
        (["void", "nope"], "no grant has reference_id 'nope'"),
        (["add", "alice", "5", "--source", "bonus", "--reference", "b-1"], "already used"),
    ],
)
def test_refusals_exit_1_with_one_line(run_cli, sql_run, loaded, args, message):
    assert run_cli("bonus", "alice").exit_code == 0
    assert run_cli("add", "alice", "9", "--source", "bonus", "--reference", "b-1").exit_code == 0
    before = sql_run("SELECT * FROM credits.transactions ORDER BY id")
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sql_run("SELECT * FROM credits.transactions ORDER BY id") == before


def test_a_pack_over_the_cap_and_a_missing_bonus_are_refused(run_cli, sql_run, tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text("[packages.big]\ncredits = 900\n[limits]\nmax_balance = 1000\n")
    assert run_cli("load-plans", str(path)).exit_code == 0
    assert run_cli("buy", "alice", "big", "--reference", "p1").exit_code == 0
    result = run_cli("buy", "alice", "big", "--reference", "p2")
    assert result.exit_code == 1 and "would pass the cap of 1000" in result.output
    result = run_cli("bonus", "alice")
    assert result.exit_code == 1 and "no sign-up bonus is configured" in result.output


# A bonus of 5 credits to alice under reference r, by the command line.
ADD_BONUS = ["add", "alice", "5", "--source", "bonus", "--reference", "r"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["spend", "alice", "--reference", "r"], "give AMOUNT or --service"),
        (["spend", "alice", "5", "--service", "chat", "--reference", "r"], "not both"),
        (["spend", "alice", "0", "--reference", "r"], "amount must be a whole number above 0"),
        (["spend", "alice", "--reference", "r", "--", "-5"], "above 0, got -5"),
        (["spend", "alice", "99999999999", "--reference", "r"], "at most 2147483647"),
        (["spend", "alice", "1", "--reference", "r" * 3000], "at most 200 characters"),
        (["spend", "alice", "1", "--reference", "r", "--metadata", "{"], "not JSON"),
        (["spend", "alice", "1", "--reference", "r", "--metadata", "[1]"], "JSON object"),
        (["spend", "alice", "--service", "chat", "--quantity", "0", "--reference", "r"], "qua"),
        (["spend", "alice", "1.5", "--reference", "r"], "not a valid integer"),
        (["add", "alice", "5", "--source", "gift", "--reference", "r"], "source must be one"),
        ([*ADD_BONUS, "--validity-days", "2147483647"], "at most 36500"),
        ([*ADD_BONUS, "--validity-days", "3", "--expires-at", "2099-01-01"], "not both"),
        (
            ["add", "alice", "5", "--source", "bonus", "--reference", "subscription:s1:2026-01"],
            "must not start",
        ),
        (["add", "alice", "5", "--source", "bonus"], "Missing option '--reference'"),
        # A negative amount is an amount to check, not an unknown option "-5".
        (["spend", "alice", "-5", "--reference", "r"], "amount must be a whole number above 0"),
        (["add", "alice", "-5", "--source", "bonus", "--reference", "r"], "above 0, got -5"),
        (["consume", "alice", "-5", "--reference", "r"], "-5 is not in the range"),
        # The service's own references are reserved for spends too.
        (["spend", "alice", "5", "--reference", "subscription:x"], "must not start"),
        (["spend", "alice", "--service", "chat", "--reference", "expire:1"], "must not start"),
        (["statement", "alice", "--limit", "101"], "at most 100"),
        (["statement", "alice", "--limit", "0"], "from 1 to 100"),
        (["statement", "alice", "--before", "99999999999999999999"], "out of range"),
        (["account", "a\x00b"], "NUL"),
        (["void", "x" * 201], "at most 200"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    run_cli, sql_run, loaded, args, message
):
    assert run_cli("bonus", "alice").exit_code == 0
    before = sql_run("SELECT * FROM credits.transactions ORDER BY id")
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert sql_run("SELECT * FROM credits.transactions ORDER BY id") == before


def test_a_long_spend_reference_is_a_clear_error_not_a_traceback(
    run_cli, pool, settings, sql_run, add_plan, subscribe
):
    add_plan("pro", 10, None)
    subscribe("s1", "alice", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    reference = secrets.token_hex(1500)  # 3,000 characters that do not compress
    result = run_cli("spend", "alice", "1", "--reference", reference)
    assert result.exit_code == 2
    assert result.output == "Error: reference_id must be at most 200 characters, got 3000\n"
    with pytest.raises(ledger.InvalidArgument, match="at most 200 characters"):
        ledger.spend(pool, ledger.SpendRequest("alice", reference, amount=1))
    assert sql_run("SELECT balance FROM credits.balances") == [{"balance": 10}]


def test_the_library_raises_one_error_class_per_refusal(pool, sql_run, loaded):
    ledger.registration_bonus(pool, "alice", at=MARCH_20)
    with pytest.raises(ledger.InsufficientCredits):
        ledger.spend(pool, ledger.SpendRequest("alice", "r1", amount=51, at=MARCH_20))
    with pytest.raises(ledger.UnknownService):
        ledger.spend(pool, ledger.SpendRequest("alice", "r1", service="music", at=MARCH_20))
    with pytest.raises(ledger.UnknownPackage):
        ledger.buy(pool, "alice", "huge", "p1")
    with pytest.raises(ledger.UnknownReference):
        ledger.reverse(pool, "alice", "r1")
    with pytest.raises(ledger.UnknownReference):
        ledger.void(pool, "p1")
    ledger.spend(pool, ledger.SpendRequest("alice", "r1", amount=5, at=MARCH_20))
    with pytest.raises(ledger.ReferenceReused):
        ledger.spend(pool, ledger.SpendRequest("alice", "r1", amount=6, at=MARCH_20))
    with pytest.raises(ledger.InvalidArgument, match="whole number"):
        ledger.grant(pool, ledger.GrantRequest("alice", 1.5, "bonus", "g1"))
    assert ledger.account(pool, "alice", at=MARCH_20)["spendable"] == 45
    # A bonus granted on 20 March with 30 days' validity is past its date by May.
    may = datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert ledger.account(pool, "alice", at=may) | {"user_id": None} == {
        "user_id": None,
        "balance": 45,
        "spendable": 0,
        "next_expiry": None,
        "next_grant": None,
    }
    assert ledger.reverse(pool, "alice", "r1", at=may)["lapsed"] == 5
