"""The console at /admin: off without its key, signed-in pages, refusals, and the actions."""

import hashlib
import html
import importlib
import json
import logging
import re
from pathlib import Path

import pytest

from app import create_app
from credits import config
from credits.console import operators
from tests.console_support import GRANT_KEY, KEY, PASSWORD, sign_in, token

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def console(make_app):
    """The service with its console on."""
    return make_app(CREDITS_CONSOLE_KEY=KEY)


@pytest.fixture
def add_operator(console):
    """Add an operator with the test password."""
    pool = console.extensions["credits"]["pool"]
    return lambda name, role="operator": operators.add(pool, name, role, PASSWORD)


@pytest.fixture
def signed_in(console, add_operator):
    """A client signed in as ann, an operator."""
    add_operator("ann")
    client = console.test_client()
    assert sign_in(client, "ann").status_code == 303
    return client


@pytest.fixture
def viewer(console, add_operator):
    """A client signed in as vic, a viewer."""
    add_operator("vic", "viewer")
    client = console.test_client()
    assert sign_in(client, "vic").status_code == 303
    return client


def grant_form(client, user_id="alice", amount="25", reason="goodwill"):
    """Open the grant's confirm page; answers (page, the form's fields)."""
    page = client.get(f"/admin/users/{user_id}/grant?amount={amount}&reason={reason}")
    assert page.status_code == 200, page.text
    fields = {"amount": amount, "reason": reason, "validity_days": ""}
    return page, {**fields, "key": GRANT_KEY.search(page.text).group(1), "csrf_token": token(page)}


def statement_metadata(page):
    """The metadata column of a user page's statement, newest entry first."""
    table = page.text.split('id="statement"')[1].split("</table>")[0]
    cells = re.findall(r'<td class="mono">([^<]*)</td>', table)
    return [json.loads(html.unescape(cell)) for cell in cells if cell.startswith("{")]


def balance(sql_run, user_id):
    rows = sql_run("SELECT balance FROM credits.balances WHERE user_id = %s", (user_id,))
    return rows[0]["balance"] if rows else 0


# Off, on, and the key.


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/", "/admin/login", "/admin/users/alice", "/admin/static/console.js"]
)
def test_without_a_console_key_every_admin_path_answers_404(client, path):
    assert client.get(path).status_code == 404
    assert client.post(path).status_code == 404


@pytest.mark.parametrize("key", ["short", "x" * 31, f"  {'x' * 31}\n"])
def test_a_short_console_key_stops_the_service_at_startup(test_config, key):
    with pytest.raises(config.ConfigError, match="CREDITS_CONSOLE_KEY must be at least 32"):
        create_app({**test_config, "CREDITS_CONSOLE_KEY": key})


def test_the_job_routes_take_posts_without_a_csrf_token_when_the_console_is_on(console, auth):
    response = console.test_client().post("/api/jobs/credits/expire", headers=auth)
    assert response.status_code == 200, response.text


# Sign-in.


def test_a_page_without_a_session_redirects_to_the_sign_in(console):
    response = console.test_client().get("/admin/users/alice")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login?next=/admin/users/alice"


def test_the_sign_in_form_has_name_password_and_csrf_token(console):
    page = console.test_client().get("/admin/login")
    assert page.status_code == 200
    for field in ('name="name"', 'name="password"', 'type="hidden" name="csrf_token"'):
        assert field in page.text


def test_signing_in_opens_a_12_hour_httponly_lax_session(console, add_operator):
    add_operator("ann")
    client = console.test_client()
    response = sign_in(client, "ann")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # served over http here
    assert console.permanent_session_lifetime.total_seconds() == 12 * 3600
    assert client.get("/admin/").status_code == 200


def test_the_session_cookie_is_secure_over_https(console, add_operator):
    add_operator("ann")
    client = console.test_client()
    page = client.get("/admin/login", base_url="https://console.example")
    response = client.post(
        "/admin/login",
        base_url="https://console.example",
        data={"name": "ann", "password": PASSWORD, "csrf_token": token(page)},
        headers={"Referer": "https://console.example/admin/login"},
    )
    assert response.status_code == 303
    assert "; Secure" in response.headers["Set-Cookie"]


def test_a_wrong_password_is_refused_and_logged_without_the_password(console, add_operator, caplog):
    add_operator("ann")
    client = console.test_client()
    with caplog.at_level(logging.WARNING, logger="credits"):
        response = sign_in(client, "ann", "wrong password here")
    assert response.status_code == 401 and "Wrong name or password" in response.text
    assert "console sign-in failed for 'ann'" in caplog.text
    assert "wrong password here" not in caplog.text
    assert client.get("/admin/").status_code == 303


def test_five_failures_a_minute_lock_the_name_even_with_the_right_password(console, add_operator):
    add_operator("ann")
    client = console.test_client()
    for _ in range(operators.MAX_FAILURES):
        assert sign_in(client, "ann", "wrong password here").status_code == 401
    assert sign_in(client, "ann").status_code == 429


def test_five_failures_a_minute_lock_the_address_for_every_name(console, add_operator):
    add_operator("ann")
    client = console.test_client()
    for n in range(operators.MAX_FAILURES):
        assert sign_in(client, f"nobody{n}", "wrong password here").status_code == 401
    assert sign_in(client, "ann").status_code == 429


def test_a_cookie_signed_with_another_key_is_no_session(make_app, console, add_operator):
    add_operator("ann")
    other = make_app(CREDITS_CONSOLE_KEY="another-console-key-0123456789abcdef")
    other_client = other.test_client()
    assert sign_in(other_client, "ann").status_code == 303  # same database, other key
    cookie = other_client.get_cookie("credits_console", path="/admin")
    client = console.test_client()
    client.set_cookie("credits_console", cookie.value, path="/admin")
    assert client.get("/admin/").status_code == 303
    assert other_client.get("/admin/").status_code == 200


def test_removing_an_operator_ends_their_session(console, signed_in):
    operators.remove(console.extensions["credits"]["pool"], "ann")
    assert signed_in.get("/admin/").status_code == 303


def test_signing_out_ends_the_session(signed_in):
    page = signed_in.get("/admin/")
    response = signed_in.post("/admin/logout", data={"csrf_token": token(page)})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/login"
    assert signed_in.get("/admin/").status_code == 303


def test_sign_in_sends_to_the_console_page_asked_for_never_elsewhere(console, add_operator):
    add_operator("ann")
    client = console.test_client()
    for wanted, landed in [("/admin/finance", "/admin/finance"), ("//evil.example", "/admin/")]:
        page = client.get(f"/admin/login?next={wanted}")
        response = client.post(
            "/admin/login",
            data={"name": "ann", "password": PASSWORD, "csrf_token": token(page), "next": wanted},
        )
        assert response.headers["Location"] == landed


# CSRF.


def test_a_post_without_a_csrf_token_answers_400_and_grants_nothing(signed_in, sql_run):
    _, form = grant_form(signed_in)
    del form["csrf_token"]
    response = signed_in.post("/admin/users/alice/grant", data=form)
    assert response.status_code == 400
    assert balance(sql_run, "alice") == 0


def test_a_stale_csrf_token_from_an_ended_session_answers_400(signed_in, sql_run):
    _, form = grant_form(signed_in)
    signed_in.post("/admin/logout", data={"csrf_token": form["csrf_token"]})
    assert sign_in(signed_in, "ann").status_code == 303
    response = signed_in.post("/admin/users/alice/grant", data=form)
    assert response.status_code == 400
    assert balance(sql_run, "alice") == 0


def test_sign_in_itself_needs_the_csrf_token(console, add_operator):
    add_operator("ann")
    response = console.test_client().post(
        "/admin/login", data={"name": "ann", "password": PASSWORD}
    )
    assert response.status_code == 400


# Roles.


@pytest.mark.parametrize("action", ["grant", "reverse", "void"])
def test_a_viewer_may_not_act(viewer, sql_run, action):
    page = viewer.get("/admin/users/alice")
    assert page.status_code == 200 and "Review grant" not in page.text
    form = {
        "csrf_token": token(page),
        "amount": "25",
        "reason": "x",
        "reference_id": "r",
        "key": "6f1c2b1e-8d0a-4d47-9f4c-8a1f4c7e2b10",
    }
    assert viewer.post(f"/admin/users/alice/{action}", data=form).status_code == 403
    assert viewer.get(f"/admin/users/alice/{action}?amount=25&reason=x").status_code == 403
    assert balance(sql_run, "alice") == 0
    assert sql_run("SELECT count(*) AS n FROM credits.console_actions")[0]["n"] == 0


def test_a_viewer_sees_every_page(viewer):
    for path in [
        "/admin/",
        "/admin/runs",
        "/admin/users?q=a",
        "/admin/users/alice",
        "/admin/finance",
        "/admin/finance.csv",
        "/admin/audit",
    ]:
        assert viewer.get(path).status_code == 200, path


# Nothing in a page is trusted.


def test_hostile_ids_references_and_metadata_are_shown_as_text(signed_in, pool):
    from credits import ledger

    ledger.grant(
        pool,
        ledger.GrantRequest(HOSTILE, 10, "bonus", f"ref-{HOSTILE}", metadata={"note": HOSTILE}),
    )
    ledger.spend(pool, ledger.SpendRequest(HOSTILE, f"spend-{HOSTILE}", amount=3))
    for path in [f"/admin/users/{HOSTILE}", "/admin/users?q=%3Cscript"]:
        page = signed_in.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


# Actions.


def test_a_grant_is_confirmed_then_made_once_however_often_the_form_is_sent(signed_in, sql_run):
    page, form = grant_form(signed_in, amount="25")
    assert "Confirm grant" in page.text and balance(sql_run, "alice") == 0  # nothing yet
    first = signed_in.post("/admin/users/alice/grant", data=form)
    again = signed_in.post("/admin/users/alice/grant", data=form)
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == "/admin/users/alice"
    assert balance(sql_run, "alice") == 25
    [entry] = sql_run("SELECT metadata, reference_id FROM credits.transactions")
    audit = sql_run("SELECT id, operator, action, result FROM credits.console_actions ORDER BY id")
    assert entry["metadata"] == {
        "operator": "ann",
        "reason": "goodwill",
        "console_action": audit[0]["id"],
    }
    assert entry["reference_id"] == f"console:{form['key']}"
    assert [a["result"] for a in audit] == ["done", "replayed"]
    assert {(a["operator"], a["action"]) for a in audit} == {("ann", "grant")}
    assert statement_metadata(signed_in.get("/admin/users/alice")) == [entry["metadata"]]


def test_a_grant_post_without_its_idempotency_key_is_refused(signed_in, sql_run):
    _, form = grant_form(signed_in)
    del form["key"]
    response = signed_in.post("/admin/users/alice/grant", data=form, follow_redirects=True)
    assert "idempotency key" in response.text
    assert balance(sql_run, "alice") == 0


@pytest.mark.parametrize("amount", ["0", "-5", "2.5", "lots", "9" * 40])
def test_a_bad_amount_is_refused_before_anything_is_done(signed_in, sql_run, amount):
    response = signed_in.get(
        f"/admin/users/alice/grant?amount={amount}&reason=x", follow_redirects=True
    )
    assert "amount must be a whole number" in response.text
    assert sql_run("SELECT count(*) AS n FROM credits.console_actions")[0]["n"] == 0


def test_reversing_a_spend_gives_the_credits_back_and_is_audited(signed_in, pool, sql_run):
    from credits import ledger

    ledger.grant(pool, ledger.GrantRequest("alice", 100, "bonus", "welcome"))
    ledger.spend(pool, ledger.SpendRequest("alice", "order-1", amount=40))
    page = signed_in.get("/admin/users/alice/reverse?reference_id=order-1")
    assert "Confirm reversal" in page.text and balance(sql_run, "alice") == 60
    response = signed_in.post(
        "/admin/users/alice/reverse",
        data={"reference_id": "order-1", "reason": "refund", "csrf_token": token(page)},
        follow_redirects=True,
    )
    assert "Reversed spend order-1: 40 credits returned" in response.text
    assert balance(sql_run, "alice") == 100
    [audit] = sql_run("SELECT id, action, reason, result FROM credits.console_actions")
    assert audit == {"id": audit["id"], "action": "reverse", "reason": "refund", "result": "done"}
    named = {"operator": "ann", "reason": "refund", "console_action": audit["id"]}
    [entry] = sql_run("SELECT metadata FROM credits.transactions WHERE type = 'reverse'")
    assert entry["metadata"] == named
    assert statement_metadata(response)[0] == named  # the newest entry


def test_voiding_a_one_off_grant_takes_back_what_remains(signed_in, pool, sql_run):
    from credits import ledger

    ledger.grant(pool, ledger.GrantRequest("alice", 100, "promotion", "promo-1"))
    ledger.spend(pool, ledger.SpendRequest("alice", "order-1", amount=30))
    page = signed_in.get("/admin/users/alice/void?reference_id=promo-1")
    assert "Confirm void" in page.text
    response = signed_in.post(
        "/admin/users/alice/void",
        data={"reference_id": "promo-1", "reason": "abuse", "csrf_token": token(page)},
        follow_redirects=True,
    )
    assert "Voided grant promo-1: 70 credits taken back (30 spent" in response.text
    assert balance(sql_run, "alice") == 0
    [audit] = sql_run("SELECT id FROM credits.console_actions")
    named = {"operator": "ann", "reason": "abuse", "console_action": audit["id"]}
    [entry] = sql_run("SELECT metadata FROM credits.transactions WHERE type = 'void'")
    assert entry["metadata"] == named
    assert statement_metadata(response)[0] == named


def test_a_refusal_shows_its_code_and_message_and_is_audited(signed_in, pool, sql_run):
    from credits import ledger

    ledger.grant(pool, ledger.GrantRequest("bob", 5, "bonus", "bob-grant"))
    page = signed_in.get("/admin/users/alice")
    response = signed_in.post(
        "/admin/users/alice/void",  # bob's grant, asked on alice's page
        data={"reference_id": "bob-grant", "reason": "x", "csrf_token": token(page)},
        follow_redirects=True,
    )
    assert "Refused (CR006)" in response.text
    assert balance(sql_run, "bob") == 5
    [audit] = sql_run("SELECT result, answer FROM credits.console_actions")
    assert audit["result"] == "refused" and audit["answer"]["code"] == "CR006"


def test_the_audit_page_lists_every_action(signed_in):
    _, form = grant_form(signed_in, amount="7", reason="sorry")
    signed_in.post("/admin/users/alice/grant", data=form)
    page = signed_in.get("/admin/audit")
    assert "ann" in page.text and "grant" in page.text and "amount=7" in page.text
    assert "sorry" in page.text and ">done<" in page.text


# Pages.


def statement_rows(page):
    """The statement's rows on a user page: (reference, amount, balance after)."""
    table = page.text.split('id="statement"')[1].split("</table>")[0]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in table.split("<tr>")[2:]]
    return [(cells[5], cells[3], cells[4]) for cells in rows]


def test_the_statement_pages_newest_first_with_balance_after(signed_in, pool):
    from credits import ledger

    for n in range(30):
        ledger.grant(pool, ledger.GrantRequest("alice", 1, "bonus", f"g{n:02d}"))
    first = signed_in.get("/admin/users/alice")
    rows = statement_rows(first)
    assert len(rows) == 25  # a page
    assert rows[0] == ("g29", "1", "30") and rows[-1] == ("g05", "1", "6")
    cursor = re.search(r'id="older" href="[^"]*before=(\d+)"', first.text).group(1)
    older = statement_rows(signed_in.get(f"/admin/users/alice?before={cursor}"))
    assert [r[0] for r in older] == ["g04", "g03", "g02", "g01", "g00"]
    assert older[-1] == ("g00", "1", "1")


def test_the_finance_csv_adds_up_by_month_and_source(signed_in, pool):
    from credits import ledger

    ledger.grant(pool, ledger.GrantRequest("alice", 100, "bonus", "b1"))
    ledger.grant(pool, ledger.GrantRequest("bob", 50, "promotion", "p1"))
    ledger.spend(pool, ledger.SpendRequest("alice", "s1", amount=30))
    ledger.void(pool, "p1")
    response = signed_in.get("/admin/finance.csv")
    assert response.mimetype == "text/csv"
    header, row = response.text.splitlines()
    assert header == (
        "month,granted,granted_bonus,granted_promotion,spent,expired,voided,outstanding"
    )
    assert row.split(",")[1:] == ["150", "100", "50", "30", "0", "50", "70"]


def test_runs_can_be_filtered_by_job_and_status(signed_in, client, auth):
    client.get("/api/jobs/credits/expire", headers=auth)
    assert "expire" in signed_in.get("/admin/runs?job=expire&status=succeeded").text
    assert "No runs." in signed_in.get("/admin/runs?job=grant").text
    assert signed_in.get("/admin/runs?status=bogus").status_code == 400


def test_a_runs_page_lists_the_subscriptions_it_could_not_grant_and_why(
    signed_in, client, auth, add_plan, subscribe, sql_run
):
    add_plan("pro", 100, 30)
    add_plan("forever", 100, 2_000_000_000)  # an expiry past the last day PostgreSQL holds
    subscribe("s1", "alice", "pro", "2026-01-10")
    subscribe(f"s2-{HOSTILE}", HOSTILE, "forever", "2026-01-10")
    subscribe("s3", "carol", "gone", "2026-01-10")
    grant = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth).get_json()
    assert grant["results"]["failed"] == 2 and balance(sql_run, "alice") == 100
    runs = signed_in.get("/admin/runs?job=grant")
    link = f"/admin/runs/{grant['jobId']}"
    assert f'href="{link}#failures"' in runs.text
    page = signed_in.get(link)
    assert page.status_code == 200
    failed = page.text.split('id="failures"')[1].split("</table>")[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in failed.split("<tr>")[2:]]
    assert [(cells[0], cells[1], re.sub("<[^>]+>", "", cells[2]), cells[3]) for cells in rows] == [
        (
            "s2-&lt;script&gt;alert(1)&lt;/script&gt;",
            "2026-03",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "plan &#39;forever&#39; has validity_days 2000000000, above 36500",
        ),
        ("s3", "2026-03", "carol", "plan &#39;gone&#39; does not exist"),
    ]
    assert "<script>alert" not in page.text


def test_a_run_keeps_its_first_failures_only_and_says_how_many_there_were(
    signed_in, client, auth, subscribe, monkeypatch
):
    grant_job = importlib.import_module("credits.jobs.grant")  # the module, not its function
    monkeypatch.setattr(grant_job, "FAILURES_KEPT", 2)
    for n in range(3):
        subscribe(f"s{n}", f"user-{n}", "gone", "2026-01-10")
    run = client.get("/api/jobs/credits/grant?date=2026-03-15", headers=auth).get_json()
    page = signed_in.get(f"/admin/runs/{run['jobId']}")
    assert "3 failed; the first 2 are listed." in page.text
    assert "s0" in page.text and "s1" in page.text and "s2" not in page.text


def test_partial_abandoned_and_failed_runs_show_as_such_with_their_error(signed_in, sql_run):
    rows = [
        ("00000000-0000-0000-0000-000000000001", "partial", None),
        ("00000000-0000-0000-0000-000000000002", "abandoned", None),
        ("00000000-0000-0000-0000-000000000003", "failed", f"OperationalError: {HOSTILE}"),
    ]
    for run_id, status, error in rows:
        sql_run(
            "INSERT INTO credits.job_runs (id, job, status, run_date, results, error) "
            "VALUES (%s, 'grant', %s, '2026-03-15', '{\"processed\": 5}', %s)",
            (run_id, status, error),
        )
    for run_id, status, _ in rows:
        listed = signed_in.get(f"/admin/runs?status={status}").text
        assert f'<span class="status {status}">{status}</span>' in listed
        assert f"/admin/runs/{run_id}" in listed and listed.count('class="status ') == 1
    page = signed_in.get(f"/admin/runs/{rows[2][0]}").text
    assert "OperationalError: &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "processed=5" in page and "<script>alert" not in page


def test_an_unknown_run_answers_404(signed_in):
    assert signed_in.get("/admin/runs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert signed_in.get("/admin/runs/not-a-run").status_code == 404


def test_the_overview_embeds_its_chart_data_as_json(signed_in, pool):
    from credits import ledger

    ledger.grant(pool, ledger.GrantRequest("alice", 100, "bonus", "b1"))
    page = signed_in.get("/admin/")
    data = page.text.split('id="flows-data">')[1].split("</script>")[0]
    flows = json.loads(data)
    assert len(flows["labels"]) == 90
    assert flows["datasets"][0]["label"] == "Granted" and flows["datasets"][0]["data"][-1] == 100
    assert "chart.umd.js" in page.text and "<script>" not in page.text  # no inline script


def test_the_vendored_chart_library_is_the_pinned_one_with_its_licence():
    vendor = ROOT / "credits" / "console" / "static" / "vendor"
    digest = hashlib.sha256((vendor / "chart.umd.js").read_bytes()).hexdigest()
    assert digest == "338399fb5bafe598d21cfc471b0590b61ceb321a985fade4f68499b151f67fbf"
    assert "Chart.js v4.6.1" in (vendor / "chart.umd.js").read_text()[:200]
    assert "MIT License" in (vendor / "chart.js-LICENSE.md").read_text()
    assert "MIT License" in (vendor / "kurkle-color-LICENSE.md").read_text()


def test_console_pages_forbid_inline_script_and_framing(signed_in):
    policy = signed_in.get("/admin/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_the_console_guide_states_the_declared_setting():
    """docs/CONSOLE.md's settings row is the console's declared one (credits.console.settings)."""
    from credits.console import settings

    guide = (ROOT / "docs" / "CONSOLE.md").read_text(encoding="utf-8").splitlines()
    assert [s.row() for s in settings.SETTINGS] == [
        line for line in guide if line.startswith("| `")
    ]
