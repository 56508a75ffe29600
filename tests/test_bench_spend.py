"""The spend benchmark runs end to end at a tiny size (its figures prove nothing here)."""

from bench import spend


def test_spend_benchmark_runs_and_writes_its_section(benchmark_report):
    text = benchmark_report(
        spend,
        "--users",
        "20",
        "--clients",
        "2",
        "--seconds",
        "0.2",
        "--rounds",
        "1",
    )
    assert "| 20 users |" in text and "| one hot user |" in text
    assert "Verdict: target 0.5 x floor over many users" in text
