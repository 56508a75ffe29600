"""The console benchmark runs end to end at a tiny size (its figures prove nothing here)."""

from click.testing import CliRunner

from bench import console
from bench.console import BEGIN, main


def test_console_benchmark_times_every_page_and_writes_its_report(benchmark_report):
    text = benchmark_report(console, "--users", "200", "--months", "3", "--rounds", "2")

    assert text.count(BEGIN) == 1
    for page, path in console.pages(200):
        assert f"| {page} | `{path or '/admin/users/user_00000100?before='}" in text, page
    # 200 users x 3 monthly grants, one in four spending, the two months before this expired.
    assert "200 users, 3 months of history: " in text
    dataset = next(line for line in text.splitlines() if line.startswith("Dataset"))
    assert "600 batches" in dataset and "200 balances" in dataset
    assert "entries added in" in dataset


def test_console_benchmark_refuses_a_size_it_cannot_build(server_url):
    result = CliRunner().invoke(main, ["--server", server_url, "--users", "5"])

    assert result.exit_code == 2
    assert "--users at least 100" in result.output
