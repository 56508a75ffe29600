"""The spend benchmark runs end to end at a tiny size (its figures prove nothing here)."""

from click.testing import CliRunner

from bench.spend import BEGIN, END, main


def test_spend_benchmark_runs_and_writes_its_section(server_url, tmp_path):
    report = tmp_path / "PERFORMANCE.md"
    report.write_text(f"# Before\n\n{BEGIN}\nold\n{END}\n\n# After\n")
    result = CliRunner().invoke(
        main,
        [
            "--server",
            server_url,
            "--users",
            "20",
            "--clients",
            "2",
            "--seconds",
            "0.2",
            "--rounds",
            "1",
            "--write",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert text.startswith("# Before\n") and text.endswith("# After\n") and "old" not in text
    assert "| 20 users |" in text and "| one hot user |" in text
    assert "Verdict: target 0.5 x floor over many users" in text
