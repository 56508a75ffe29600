"""`python -m credits operator add|remove|list`: the console's operators on the command line."""

import json

import pytest
from click.testing import CliRunner

from credits.cli import cli
from tests.console_support import PASSWORD


@pytest.fixture
def operator_cli(database_url):
    """Run `python -m credits operator ...` with standard input."""

    def run(*args, stdin=""):
        runner = CliRunner()
        return runner.invoke(
            cli, ["operator", *args], input=stdin, env={"DATABASE_URL": database_url}
        )

    return run


def test_an_operator_is_added_with_only_a_hash_of_the_password(operator_cli, sql_run):
    result = operator_cli("add", "ann", "--role", "operator", stdin=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "ann", "role": "operator", "added": True}
    [row] = sql_run("SELECT name, role, password_hash FROM credits.operators")
    assert (row["name"], row["role"]) == ("ann", "operator")
    assert row["password_hash"].startswith("scrypt:") and PASSWORD not in row["password_hash"]


def test_operators_are_listed_as_json_without_hashes(operator_cli):
    operator_cli("add", "vic", "--role", "viewer", stdin=PASSWORD)
    operator_cli("add", "ann", "--role", "operator", stdin=PASSWORD)
    result = operator_cli("list")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert [(o["name"], o["role"]) for o in listed] == [("ann", "operator"), ("vic", "viewer")]
    assert "hash" not in result.output


def test_an_operator_is_removed(operator_cli):
    operator_cli("add", "ann", "--role", "operator", stdin=PASSWORD)
    removed = operator_cli("remove", "ann")
    assert removed.exit_code == 0
    assert json.loads(removed.stdout) == {"name": "ann", "removed": True}
    assert json.loads(operator_cli("list").output) == []


@pytest.mark.parametrize(
    "args, stdin, code, message",
    [
        (["add", "ann", "--role", "operator"], "short\n", 2, "password must be 12"),
        (["add", "ann", "--role", "operator"], "", 2, "password must be 12"),
        (["add", "ann", "--role", "admin"], PASSWORD, 2, "'admin' is not one of"),
        (["add", "ann"], PASSWORD, 2, "Missing option '--role'"),
        (["add", "a n<n>", "--role", "viewer"], PASSWORD, 2, "the name must be"),
        (["remove", "nobody"], "", 1, "no operator is named 'nobody'"),
    ],
)
def test_bad_input_is_a_one_line_error_without_traceback(operator_cli, args, stdin, code, message):
    result = operator_cli(*args, stdin=stdin)
    assert result.exit_code == code
    assert isinstance(result.exception, SystemExit)  # a clean exit, no traceback
    [error] = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert message in error


def test_adding_a_taken_name_is_refused(operator_cli, sql_run):
    operator_cli("add", "ann", "--role", "viewer", stdin=PASSWORD)
    result = operator_cli("add", "ann", "--role", "operator", stdin="another password!")
    assert result.exit_code == 1 and "exists already" in result.output
    assert sql_run("SELECT role FROM credits.operators") == [{"role": "viewer"}]
