"""The limits, written once on each side (credits.max_*() in migration 0004, credits/limits.py),
agree, and the tables, the SQL functions and the plans file all refuse one past them."""

import psycopg
import pytest

from credits import plans
from credits.limits import MAX_CREDITS, MAX_TEXT_LENGTH, MAX_VALIDITY_DAYS


def test_the_python_limits_are_the_databases(sql_run):
    found = sql_run(
        "SELECT credits.max_credits() AS credits, credits.max_validity_days() AS validity_days,"
        " credits.max_text_length() AS text_length"
    )
    assert found == [
        {"credits": MAX_CREDITS, "validity_days": MAX_VALIDITY_DAYS, "text_length": MAX_TEXT_LENGTH}
    ]


@pytest.mark.parametrize(
    ("credits", "validity_days"),
    [(MAX_CREDITS + 1, None), (1, MAX_VALIDITY_DAYS + 1), (1, 0)],
)
def test_a_pack_past_a_limit_is_refused_by_the_table(sql_run, credits, validity_days):
    sql_run(
        "INSERT INTO credits.packages VALUES ('most', %s, %s, %s)",
        (MAX_CREDITS - 1, 1, MAX_VALIDITY_DAYS),
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        sql_run(
            "INSERT INTO credits.packages VALUES ('past', 1, %s, %s)",
            (credits - 1, validity_days),
        )
    assert [row["package_id"] for row in sql_run("SELECT package_id FROM credits.packages")] == [
        "most"
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            f"credits.grant_credits('a', {MAX_CREDITS + 1}, 'bonus', 'r')",
            f"amount must be at most {MAX_CREDITS}, got {MAX_CREDITS + 1}",
        ),
        (
            f"credits.grant_credits('a', 5, 'bonus', 'r', {MAX_VALIDITY_DAYS + 1})",
            f"validity_days must be at most {MAX_VALIDITY_DAYS}, got {MAX_VALIDITY_DAYS + 1}",
        ),
        (
            f"credits.grant_credits('a', 5, 'bonus', 'r', expires_at => now() + "
            f"make_interval(days => {MAX_VALIDITY_DAYS + 1}))",
            f"expires_at must be within {MAX_VALIDITY_DAYS} days",
        ),
        (
            f"credits.spend('{'u' * (MAX_TEXT_LENGTH + 1)}', 1, 'r')",
            f"user_id must be at most {MAX_TEXT_LENGTH} characters, got {MAX_TEXT_LENGTH + 1}",
        ),
    ],
)
def test_a_call_past_a_limit_is_refused_with_the_limit_named(sql_run, call, message):
    with pytest.raises(psycopg.Error, match=message):
        sql_run(f"SELECT {call}")
    assert sql_run("SELECT count(*) AS n FROM credits.transactions") == [{"n": 0}]


def test_the_plans_file_refuses_what_the_database_would(tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text(
        f"[plans.pro]\nmonthly_credits = 10\nvalidity_days = {MAX_VALIDITY_DAYS}\n"
        f"[packages.big]\ncredits = {MAX_CREDITS - 1}\nbonus = 1\n"
    )
    assert plans.read_plans(path).packages[0]["credits"] == MAX_CREDITS - 1
    path.write_text(f"[packages.big]\ncredits = {MAX_CREDITS}\nbonus = 1\n")
    with pytest.raises(plans.PlanFileError, match=f"below {MAX_CREDITS + 1}"):
        plans.read_plans(path)
