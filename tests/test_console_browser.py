"""The console in a real browser (Chromium driven by Playwright): an operator's visit and a
viewer's, with a screenshot of each page in the test's folder and in .screens/."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from credits import ledger
from credits.console import operators
from testing.served import in_a_thread
from tests.console_support import KEY, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENS = ROOT / ".screens"

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed (pip install -r requirements-dev.txt)",
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture
def console(make_app):
    """The service with its console on, an operator (ann) and a viewer (vic)."""
    app = make_app(CREDITS_CONSOLE_KEY=KEY)
    pool = app.extensions["credits"]["pool"]
    operators.add(pool, "ann", "operator", PASSWORD)
    operators.add(pool, "vic", "viewer", PASSWORD)
    return app


@pytest.fixture
def alice(console):
    """alice: 30 bonus grants of 5 credits and a spend of 40 (balance 110)."""
    pool = console.extensions["credits"]["pool"]
    for n in range(30):
        ledger.grant(pool, ledger.GrantRequest("alice", 5, "bonus", f"bonus-{n:02d}"))
    ledger.spend(pool, ledger.SpendRequest("alice", "order-1", amount=40))


@pytest.fixture
def served(console):
    """The console answering HTTP on a free local port."""
    with in_a_thread(console) as url:
        yield url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def screenshot(tmp_path, request):
    """Save a full-page screenshot under tmp_path and copy it to .screens/ to look at."""
    SCREENS.mkdir(exist_ok=True)

    def take(page, name):
        path = tmp_path / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy(path, SCREENS / f"{name}.png")

    return take


def sign_in(page, base, name):
    page.goto(f"{base}/admin/")
    assert page.url.endswith("/admin/login?next=/admin/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    follow(page, "button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def follow(page, selector):
    """Click what takes the page elsewhere, and wait until the new page has loaded."""
    with page.expect_navigation():
        page.click(selector)


def chart_data(page, canvas_id):
    """The datasets the chart drawn on a canvas holds, by label."""
    return page.evaluate(
        """id => Object.fromEntries(Chart.getChart(document.getElementById(id)).data.datasets
                                    .map(d => [d.label, d.data]))""",
        canvas_id,
    )


def test_an_operator_looks_alice_up_pages_her_statement_grants_25_and_signs_out(
    browser, served, alice, sql_run, screenshot
):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{served}/admin/login")
    screenshot(page, "login")
    sign_in(page, served, "ann")
    screenshot(page, "overview")

    follow(page, "nav >> text=Users")
    page.fill("input[name=q]", "ali")
    follow(page, "button:has-text('Search')")
    follow(page, "a:has-text('alice')")
    assert page.inner_text("#balance") == "110"
    assert page.locator("#statement >> text=Reverse…").count() == 1  # one spend, 8 entries
    screenshot(page, "user")
    assert page.locator("#statement tbody tr").count() == 25
    follow(page, "#older")
    # 30 grants and a spend of 40 drawn from 8 of them: 38 entries, 25 a page.
    assert page.locator("#statement tbody tr").count() == 13
    assert "bonus-00" in page.inner_text("#statement")
    screenshot(page, "user-older")

    follow(page, "text=← Newest")
    page.fill("input[name=amount]", "25")
    page.fill("input[name=reason]", "Support ticket 4711")
    follow(page, "button:has-text('Review grant')")
    assert page.inner_text("#new-balance") == "135"
    assert sql_run("SELECT balance FROM credits.balances")[0]["balance"] == 110  # not yet
    screenshot(page, "confirm-grant")
    follow(page, "button:has-text('Grant 25 credits')")
    page.wait_for_url(f"{served}/admin/users/alice")
    assert "Granted 25 credits to alice: balance 135." in page.inner_text(".flash")
    assert page.inner_text("#balance") == "135"
    newest = page.inner_text("#statement tbody tr:first-child")
    assert '"operator":"ann"' in newest.replace(" ", "") and "Support ticket 4711" in newest
    screenshot(page, "granted")

    follow(page, "nav >> text=Audit")
    assert "Support ticket 4711" in page.inner_text("#audit")
    screenshot(page, "audit")
    follow(page, "nav >> text=Runs")
    screenshot(page, "runs")

    follow(page, "button:has-text('Sign out')")
    page.wait_for_url(f"{served}/admin/login")
    page.goto(f"{served}/admin/users/alice")
    assert "/admin/login" in page.url
    assert errors == []


def test_the_charts_are_drawn_from_the_ledgers_sums(
    browser, served, alice, client, auth, sql_run, screenshot
):
    client.get("/api/jobs/credits/expire", headers=auth)  # a run, for the durations chart
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, served, "ann")
    assert page.locator("canvas").count() == 3
    flows = chart_data(page, "flows-chart")
    sums = sql_run(
        """SELECT coalesce(sum(amount) FILTER (WHERE type = 'grant'), 0) AS granted,
                  coalesce(-sum(amount) FILTER (WHERE type IN ('consume', 'reverse')), 0) AS spent,
                  coalesce(sum(amount), 0) AS outstanding
             FROM credits.transactions"""
    )[0]
    assert len(flows["Granted"]) == 90
    assert sum(flows["Granted"]) == sums["granted"] == 150
    assert sum(flows["Spent"]) == sums["spent"] == 40
    assert sum(flows["Expired"]) == sum(flows["Voided"]) == 0
    assert chart_data(page, "outstanding-chart")["Outstanding"][-1] == sums["outstanding"]
    assert len(chart_data(page, "durations-chart")["expire run (s)"]) == 1

    follow(page, "nav >> text=Finance")
    months = chart_data(page, "finance-flows-chart")
    assert sum(months["Granted"]) == 150 and sum(months["Spent"]) == 40
    assert chart_data(page, "finance-outstanding-chart")["Outstanding"][-1] == 110
    screenshot(page, "finance")


def test_a_grant_runs_page_lists_what_it_could_not_grant(
    browser, served, client, auth, add_plan, subscribe, screenshot
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe("s2", "bob", "gone", "2026-01-10")
    client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, served, "vic")
    follow(page, "nav >> text=Runs")
    screenshot(page, "runs-with-failures")
    follow(page, "text=the subscriptions it could not grant, and why")
    assert page.locator("#failures tbody tr").count() == 1
    assert page.inner_text("#failures tbody tr") == "s2\t2026-03\tbob\tplan 'gone' does not exist"
    screenshot(page, "run")


def test_a_viewer_sees_alice_but_cannot_act(browser, served, alice, sql_run, screenshot):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, served, "vic")
    page.goto(f"{served}/admin/users/alice")
    assert page.inner_text("#balance") == "110"
    assert page.locator("text=Review grant").count() == 0
    assert page.locator("text=Reverse…").count() == 0
    screenshot(page, "viewer-user")
    response = page.goto(f"{served}/admin/users/alice/grant?amount=25&reason=x")
    assert response.status == 403
    screenshot(page, "viewer-403")
    assert sql_run("SELECT balance FROM credits.balances")[0]["balance"] == 110
