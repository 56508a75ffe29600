"""The benchmark runs end to end at a tiny size (its figures prove nothing about speed here)."""

from click.testing import CliRunner

from bench import events, run, writes
from bench.run import BEGIN, END, GROWTH_BEGIN, GROWTH_END, main


def test_benchmark_runs_and_writes_its_report(benchmark_report, monkeypatch):
    # Small chunks, so the budgeted grant takes several calls even at this size.
    monkeypatch.setenv("CREDITS_CHUNK_SIZE", "50")
    text = benchmark_report(
        run,
        "--subscriptions",
        "300",
        "--loop-sample",
        "20",
        "--budget",
        "0.001",
    )
    assert text.count(BEGIN) == 1
    for step in (
        "floor",
        "grant, first run",
        "grant again, nothing to do",
        "expire N batches",
        "steady-state day",
        "per-user loop",
    ):
        assert f"| {step}" in text, step
    assert text.count("x floor |") == 8 and "per-user loop / grant" in text
    budgeted = next(line for line in text.splitlines() if line.startswith("Budgeted"))
    calls = int(budgeted.split(": ")[1].split(" calls")[0])
    assert calls > 1
    assert '"successful": 300' in budgeted


def test_a_large_run_measures_each_step_over_http(benchmark_report, monkeypatch):
    monkeypatch.setenv("CREDITS_CHUNK_SIZE", "50")
    text = benchmark_report(run, "--subscriptions", "300", "--loop-sample", "20", "--large")

    for step in (
        "| grant, first run | HTTP |",
        "| grant again, nothing to do | HTTP |",
        "| expire N batches | HTTP |",
        "| steady-state day, 10 due, one month of history | HTTP |",
        "| grant, first run, N/10 | HTTP |",
    ):
        assert step in text, step
    assert "| CLI |" not in text and text.count("x floor |") == 4
    assert "grant, first run: N / N/10 <= 11 x" in text


def test_growth_run_writes_its_own_section(server_url, tmp_path):
    report = tmp_path / "PERFORMANCE.md"
    report.write_text(f"{BEGIN}\nkept\n{END}\n{GROWTH_BEGIN}\nold\n{GROWTH_END}\n")

    result = CliRunner().invoke(
        main,
        ["--server", server_url, "--subscriptions", "300", "--growth", "--spends", "10"]
        + ["--write", str(report)],
    )

    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "kept" in text and "old" not in text
    assert "| 1 month |" in text and "| 24 months |" in text
    assert "steady-state day, fresh copy, 24 months <= 1.2 x 1 month" in text
    assert "a day, the database itself, 24 months <= 1.2 x 1 month" in text
    # 24 monthly batches of every subscription are in the history, all expired.
    assert "| batches | table |" in text


def test_events_run_times_the_scan_and_its_parts(server_url):
    result = CliRunner().invoke(events.main, ["--server", server_url, "--subscriptions", "300"])

    assert result.exit_code == 0, result.output
    for step in (
        "grant, first run, events off",
        "grant, first run, events on",
        "expiring-soon scan",
        "scan's payloads built, nothing written",
        "scan's rows written, payload built once",
    ):
        assert step in result.output, step
    assert result.output.count("x floor") == 3


def test_writes_run_times_each_table_a_job_writes(server_url):
    result = CliRunner().invoke(writes.main, ["--server", server_url, "--subscriptions", "300"])

    assert result.exit_code == 0, result.output
    for table in writes.TABLES:
        assert f"first grant's {table} " in result.output, table
    for table in writes.EXPIRE:
        assert f"expire's {table} " in result.output, table
    for job in ("first grant", "expire"):
        assert f"{job}'s writes, one after another" in result.output
        assert f"{job}'s writes, two halves at once" in result.output
    assert result.output.count("x floor") == 13
