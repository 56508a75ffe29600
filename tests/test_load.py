"""A short load run (reliability/load.py): gunicorn workers, concurrent triggers, spending, and
the app's buyers, reversers and voiders, and an operator at the console."""

from reliability.load import run_load


def test_concurrent_triggers_and_spending_lose_double_and_break_nothing(server_url):
    report = run_load(
        server_url, workers=3, users=150, triggers=60, trigger_threads=8, consumers=4, spends=60
    )
    assert report["violations"] == []
    by_status = report["triggers"]["by status"]
    assert set(by_status) <= {"grant 200", "grant 409", "expire 200", "expire 409"}, by_status
    assert by_status.get("grant 200") and by_status.get("expire 200")
    # Each date once and expire twice, a call more where one answered "complete": false.
    quiet = report["quiet runs"]
    assert set(quiet) == {"grant 200", "expire 200"}, quiet
    assert quiet["grant 200"] >= 9 and quiet["expire 200"] >= 2, quiet
    # Every user held credits: 9 run dates over 3 months, 3 plans each.
    assert report["database"]["batches"] == 150 * 3 * 3
    assert report["consumers"]["spent"] > 0 and report["database"]["credits spent"] > 0
    # The app's side ran alongside: packs bought, spends reversed, packs voided.
    assert report["app"]["pack bought"] and report["app"]["reversed"] and report["app"]["voided"]
    # And an operator's console actions, each checked in the ledger and the audit.
    for action in ("grant", "reverse", "void"):
        assert report["app"][f"console {action} done"], report["app"]
    assert report["service"]["tracebacks logged"] == 0
