"""The benchmark runs end to end at a tiny size (its figures prove nothing about speed here)."""

from click.testing import CliRunner

from bench.run import BEGIN, END, main


def test_benchmark_runs_and_writes_its_report(server_url, tmp_path, monkeypatch):
    # Small chunks, so the budgeted grant takes several calls even at this size.
    monkeypatch.setenv("CREDITS_CHUNK_SIZE", "50")
    report = tmp_path / "PERFORMANCE.md"
    report.write_text(f"# Before\n\n{BEGIN}\nold\n{END}\n\n# After\n")

    result = CliRunner().invoke(
        main,
        [
            "--server",
            server_url,
            "--subscriptions",
            "300",
            "--loop-sample",
            "20",
            "--budget",
            "0.001",
            "--write",
            str(report),
        ],
    )

    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert text.startswith("# Before\n") and text.endswith("# After\n")
    assert "old" not in text and text.count(BEGIN) == 1
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
