"""The console benchmark: each page's server time on N users with M months of ledger history.

    python -m bench.console --server postgresql://postgres@127.0.0.1:5432/postgres \
        --users 1000000 --months 24 --write docs/PERFORMANCE.md

The history is written set-based, as the jobs and the functions would have left it: every
user has a subscription and a batch granted each month, expiring 30 days later; one user in
four spends half of each batch ten days after its grant; what remains of a batch is expired
when it lapses; the jobs ran twice a day. The summary of the ledger is then brought up to date
once (timed: what a database upgraded to migration 0006 does once), and each page is asked for
through the app (Flask's test client, a signed-in viewer) --rounds times; its median server
time is reported. --database reuses a database built before (kept with --keep).
"""

import re
import statistics
import time
from datetime import date
from pathlib import Path

import click
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from app import create_app
from bench.run import write_report
from credits import summary
from credits.console import operators
from testing.databases import create_database, drop_database, migrate, unique_name

BEGIN, END = "<!-- console-bench:begin -->", "<!-- console-bench:end -->"
TARGET_MS = 300
SECRET = "console-bench-secret"
KEY = "console-bench-key-0123456789abcdef0123"
PASSWORD = "console bench password"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def history(url, users, months):
    """Write `users` users' `months` months of history, set-based (the indexes built after)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("INSERT INTO credits.plans VALUES ('basic', 100, 30), ('pro', 1000, 30)")
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            " WHERE i.schemaname = 'credits' AND i.tablename IN ('batches', 'transactions') "
            "   AND i.indexname NOT LIKE '%%pkey'"
        ).fetchall()
        for index, _ in indexes:
            conn.execute(f"DROP INDEX credits.{index}")
        conn.execute(
            "INSERT INTO credits.subscriptions "
            "SELECT 'sub_' || lpad(i::text, 8, '0'), 'user_' || lpad(i::text, 8, '0'), "
            "       CASE WHEN i %% 5 = 0 THEN 'pro' ELSE 'basic' END, 'active', "
            "       date_trunc('month', now()) - make_interval(months => %(months)s) "
            "       + make_interval(days => i %% 28), NULL "
            "  FROM generate_series(1, %(users)s) AS i",
            {"users": users, "months": months},
        )
        # A batch a month; one user in four spends half of it ten days in (if that day came).
        conn.execute(
            "INSERT INTO credits.batches (user_id, source, reference_id, grant_period, amount, "
            "       remaining, granted_at, expires_at, status) "
            "SELECT s.user_id, 'subscription', "
            "       'subscription:' || s.id || ':' || to_char(g.at, 'YYYY-MM'), "
            "       to_char(g.at, 'YYYY-MM'), p.monthly_credits, "
            "       CASE WHEN g.at + interval '30 days' <= now() THEN 0 "
            "            WHEN spender AND g.at + interval '10 days' <= now() "
            "            THEN p.monthly_credits / 2 ELSE p.monthly_credits END, "
            "       g.at, g.at + interval '30 days', "
            "       CASE WHEN g.at + interval '30 days' <= now() THEN 'expired' "
            "            ELSE 'active' END "
            "  FROM generate_series(0, %(months)s - 1) AS m "
            " CROSS JOIN credits.subscriptions s "
            "  JOIN credits.plans p ON p.plan_id = s.plan_id "
            " CROSS JOIN LATERAL (SELECT s.started_at + make_interval(months => m) AS at, "
            "                            right(s.user_id, 2)::int %% 4 = 0 AS spender) g "
            " WHERE g.at <= now() "
            " ORDER BY m, s.id",
            {"months": months},
        )
        spenders = "right(b.user_id, 2)::int % 4 = 0"
        conn.execute(
            "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id, "
            "       created_at) "
            "SELECT b.user_id, b.id, 'grant', b.amount, b.reference_id, b.granted_at "
            "  FROM credits.batches b ORDER BY b.id"
        )
        conn.execute(
            "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id, "
            "       created_at, service) "
            "SELECT b.user_id, b.id, 'consume', -(b.amount / 2), 'spend:' || b.id, "
            "       b.granted_at + interval '10 days', 'report' "
            f"  FROM credits.batches b WHERE {spenders} "
            "   AND b.granted_at + interval '10 days' <= now() ORDER BY b.id"
        )
        conn.execute(
            "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id, "
            "       created_at) "
            "SELECT b.user_id, b.id, 'expire', "
            f"      -(b.amount - CASE WHEN {spenders} THEN b.amount / 2 ELSE 0 END), "
            "       'expire:' || b.id, b.expires_at "
            "  FROM credits.batches b WHERE b.status = 'expired' ORDER BY b.id"
        )
        conn.execute(
            "INSERT INTO credits.balances (user_id, balance) "
            "SELECT t.user_id, sum(t.amount) FROM credits.transactions t GROUP BY t.user_id"
        )
        for _, definition in indexes:
            conn.execute(definition)
        # The jobs ran twice a day (grant at 00:05, expire at 00:10) over the whole history.
        conn.execute(
            "INSERT INTO credits.job_runs (id, job, status, run_date, started_at, finished_at, "
            "       results) "
            "SELECT gen_random_uuid(), j.job, 'succeeded', d::date, d + j.at, "
            "       d + j.at + interval '40 seconds', '{}'::jsonb "
            "  FROM generate_series(date_trunc('day', now()) "
            "                       - make_interval(months => %(months)s), "
            "                       date_trunc('day', now()), interval '1 day') AS d "
            " CROSS JOIN (VALUES ('grant', interval '5 minutes'), "
            "                    ('expire', interval '10 minutes')) AS j (job, at) "
            " WHERE d + j.at <= now()",
            {"months": months},
        )
        conn.execute("VACUUM ANALYZE")


def pages(users):
    """(page, path) of each page asked for: a user in the middle of the ids, and their prefix."""
    user = f"user_{users // 2:08d}"
    return [
        ("Overview", "/admin/"),
        ("Runs", "/admin/runs"),
        ("Runs, one job and status", "/admin/runs?job=grant&status=succeeded"),
        ("User", f"/admin/users/{user}"),
        ("User, statement page 2", None),  # statement_page_two
        ("User search by id prefix", f"/admin/users?q={user[:-2]}"),
        ("Finance", "/admin/finance"),
        ("Finance CSV", "/admin/finance.csv"),
        ("Audit", "/admin/audit"),
    ]


def signed_in_viewer(url):
    """A test client of the app on url, signed in as a viewer."""
    app = create_app({"DATABASE_URL": url, "CRON_SECRET": SECRET, "CREDITS_CONSOLE_KEY": KEY})
    name = "bench-" + unique_name("v")[-12:]
    operators.add(app.extensions["credits"]["pool"], name, "viewer", PASSWORD)
    client = app.test_client()
    form = client.get("/admin/login")
    token = TOKEN.search(form.text).group(1)
    signed = client.post(
        "/admin/login", data={"name": name, "password": PASSWORD, "csrf_token": token}
    )
    if signed.status_code != 303:
        raise click.ClickException("could not sign in to the console")
    return app, client


def statement_page_two(url, users):
    """The user page's second statement page: entries older than the first page's last."""
    user = f"user_{users // 2:08d}"
    with psycopg.connect(url) as conn:
        ids = conn.execute(
            "SELECT id FROM credits.transactions WHERE user_id = %s ORDER BY id DESC LIMIT 25",
            (user,),
        ).fetchall()
    return f"/admin/users/{user}?before={ids[-1][0]}"


def time_pages(url, users, rounds, log):
    """(page, path, median ms, each round's ms) of every page, asked for rounds times."""
    app, client = signed_in_viewer(url)
    measured = []
    try:
        for page, path in pages(users):
            if path is None:
                path = statement_page_two(url, users)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise click.ClickException(f"{path} answered {response.status_code}")
            measured.append((page, path, statistics.median(times), times))
            log(f"{page:<28} {statistics.median(times):8.1f} ms  {path}")
    finally:
        app.extensions["credits"]["pool"].close()
    return measured


def fold_history(url, log):
    """Bring the summary up to date from nothing; answers (entries, seconds)."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        started = time.monotonic()
        entries = summary.catch_up(conn)
        seconds = time.monotonic() - started
    log(f"summary of {entries:,} entries brought up to date in {seconds:.1f} s")
    return entries, seconds


def counts(url):
    """Rows of the ledger and of the batches, and the months the ledger spans."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM credits.transactions), "
            "       (SELECT count(*) FROM credits.batches), "
            "       (SELECT count(*) FROM credits.balances), "
            "       (SELECT count(*) FROM credits.ledger_days)"
        ).fetchone()


def report(users, months, built, folded, measured, sizes, command):
    """The Markdown of the run, between the console benchmark's markers."""
    ledger_rows, batches, balances, days = sizes
    lines = [
        BEGIN,
        f"Run on {date.today()} with:",
        "",
        f"    {command}",
        "",
        f"Dataset: {users:,} users, {months} months of history: {ledger_rows:,} ledger entries, "
        f"{batches:,} batches, {balances:,} balances ("
        + (f"written in {built:.0f} s" if built else "built by an earlier run")
        + "). The summary "
        f"brought up to date before the pages were timed: {folded[0]:,} entries added in "
        f"{folded[1]:.1f} s ({days:,} rows of credits.ledger_days).",
        "",
        f"| page | path | median server time | target < {TARGET_MS} ms |",
        "|---|---|---:|---|",
    ]
    for page, path, ms, _ in measured:
        verdict = "met" if ms < TARGET_MS else "**not met**"
        lines.append(f"| {page} | `{path}` | {ms:.1f} ms | {verdict} |")
    lines.append(END)
    return "\n".join(lines)


@click.command()
@click.option("--server", "server_url", required=True, help="A PostgreSQL server URL.")
@click.option("--users", default=1_000_000, show_default=True, help="N users.")
@click.option("--months", default=24, show_default=True, help="Months of history.")
@click.option("--rounds", default=5, show_default=True, help="Requests timed per page.")
@click.option("--database", "reuse", help="Time the pages on this database, built before.")
@click.option("--keep", is_flag=True, help="Keep the database built (its name is logged).")
@click.option("--write", "write_path", type=click.Path(dir_okay=False), help="Markdown file.")
def main(server_url, users, months, rounds, reuse, keep, write_path):
    """Build the history (or reuse one), then time each console page."""
    if users < 100 or not 1 <= months <= 120 or rounds < 1:
        raise click.BadParameter("--users at least 100, --months 1 to 120, --rounds at least 1")

    def log(line):
        click.echo(line, err=True)

    name = reuse or unique_name("console_bench")
    url = make_conninfo(server_url, dbname=name)
    built = 0.0
    try:
        if not reuse:
            create_database(server_url, name)
            migrate(url)
            started = time.monotonic()
            history(url, users, months)
            built = time.monotonic() - started
            log(f"history of {users:,} users and {months} months written in {built:.0f} s")
        migrate(url)
        folded = fold_history(url, log)
        measured = time_pages(url, users, rounds, log)
        sizes = counts(url)
    finally:
        if keep or reuse:
            log(f"database kept: {name}")
        else:
            drop_database(server_url, name)
    command = (
        f"python -m bench.console --server {server_url} --users {users} --months {months} "
        f"--rounds {rounds}"
        + (f" --database {reuse}" if reuse else "")
        + (f" --write {write_path}" if write_path else "")
    )
    text = report(users, months, built, folded, measured, sizes, command)
    if write_path:
        write_report(Path(write_path), text, BEGIN, END)
    click.echo(text)


if __name__ == "__main__":
    main()
