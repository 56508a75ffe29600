"""The scale benchmark: grant and expire over N subscriptions, against the floor, in one run.

    python -m bench.run --server postgresql://postgres@127.0.0.1:5432/postgres \
        --subscriptions 1000000 --write docs/PERFORMANCE.md

Every measurement starts from its own copy of a seeded database (CREATE DATABASE ... TEMPLATE),
so the HTTP and the CLI figure of a step see the same rows. Without --server the embedded
PostgreSQL is used. Timings are wall-clock seconds as the caller sees them.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import median

import click
import psycopg
from psycopg.conninfo import make_conninfo

from credits import db
from testing.databases import (
    create_database,
    drop_database,
    embedded_server,
    migrate,
    unique_name,
)
from testing.invariant import invariant_violations
from testing.served import DidNotStart, Served

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-" + uuid.uuid4().hex
# The history: subscriptions start on days 1-30 of a month and are granted monthly.
FIRST_GRANT = date(2026, 7, 31)  # every subscription due; its batches expired by now
HISTORY = [date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)]
STEADY_DAY = date(2026, 11, 15)  # about 1/30 of the subscriptions are due on this day
DAYS_IN_A_ROW = 3  # the steady day and the days after it, granted on each history itself
# The growth run spends on the last of those days, at noon UTC: on that day's clock, not the
# real one, under which the 30-day batches of those days have long lapsed.
LAST_DAY = STEADY_DAY + timedelta(days=DAYS_IN_A_ROW - 1)
SPEND_AT = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 12, tzinfo=timezone.utc)
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
GROWTH_BEGIN, GROWTH_END = "<!-- growth:begin -->", "<!-- growth:end -->"


class Bench:
    """A server, the databases the benchmark made on it, and what it measured."""

    def __init__(self, server_url, log):
        self.server_url = server_url
        self.log = log
        self.databases = []
        self.rows = []  # (step, how, seconds, note)
        self.server_log = None  # the server's log file, to time each call's chunks from

    def new_database(self, template=None):
        """A new database, empty or a file copy of `template`, dropped by drop_all()."""
        name = unique_name("credits_bench")
        create_database(self.server_url, name, template, file_copy=True)
        self.databases.append(name)
        return name

    def url(self, name):
        return make_conninfo(self.server_url, dbname=name)

    def execute(self, name, statement, params=None):
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def record(self, step, how, seconds, note=""):
        self.rows.append((step, how, seconds, note))
        self.log(f"{step:<34} {how:<6} {seconds:9.2f} s  {note}")

    def drop(self, name):
        """Drop one of the benchmark's databases now (a copy of a large one is many GB)."""
        drop_database(self.server_url, name)
        self.databases.remove(name)

    def drop_all(self):
        for name in self.databases:
            drop_database(self.server_url, name)


@contextmanager
def benched(server_url):
    """A Bench on server_url (None: the embedded PostgreSQL); its databases are dropped after."""
    with ExitStack() as stack:
        if server_url is None:
            server_url = stack.enter_context(embedded_server())
        bench = Bench(server_url, click.echo)
        stack.callback(bench.drop_all)
        yield bench


def seed(bench, subscriptions):
    """A database with the schema, two plans and `subscriptions` active subscriptions."""
    name = bench.new_database()
    migrate(bench.url(name))
    bench.execute(name, "INSERT INTO credits.plans VALUES ('basic', 100, 30), ('pro', 1000, 30)")
    bench.execute(
        name,
        "INSERT INTO credits.subscriptions "
        "SELECT 'sub_' || lpad(i::text, 8, '0'), 'user_' || lpad(i::text, 8, '0'), "
        "       CASE WHEN i %% 5 = 0 THEN 'pro' ELSE 'basic' END, 'active', "
        "       timestamptz '2026-01-01' + ((i %% 30) || ' days')::interval, NULL "
        "  FROM generate_series(1, %s) AS i",
        (subscriptions,),
    )
    bench.execute(name, "VACUUM ANALYZE")
    return name


def floor(bench, name):
    """One INSERT ... SELECT of a batch per subscription into a copy of credits.batches."""
    bench.execute(name, "CREATE TABLE public.floor (LIKE credits.batches INCLUDING ALL)")
    started = time.monotonic()
    bench.execute(
        name,
        "INSERT INTO public.floor "
        "       (user_id, source, reference_id, grant_period, amount, remaining, expires_at) "
        "SELECT user_id, 'subscription', 'subscription:' || id || ':2026-07', '2026-07', "
        "       100, 100, timestamptz '2026-08-30' "
        "  FROM credits.subscriptions",
    )
    seconds = time.monotonic() - started
    bench.execute(name, "DROP TABLE public.floor")
    return seconds


@contextmanager
def served(bench, name):
    """gunicorn with one worker, as the Procfile runs it, on database `name`."""
    env = {"DATABASE_URL": bench.url(name), "CRON_SECRET": SECRET}
    server = Served(env, gunicorn_args="--workers 1 --access-logfile /dev/null")
    try:
        server.wait_ready()
    except DidNotStart:
        raise click.ClickException("gunicorn did not start") from None
    try:
        yield server
    finally:
        server.stop()


def timed_call(server, path):
    """(seconds, body) of a job called over HTTP, as the caller sees it."""
    started = time.monotonic()
    status, body = server.call(path, SECRET, timeout=600)
    seconds = time.monotonic() - started
    check(status == 200, f"{path} answered 200")
    return seconds, body


def calls_until_complete(server, path):
    """Call a budgeted job until it says it is complete, as a cron platform's retries would.

    Answers [(seconds, body, (started, ended))] of each call: the windows, in UTC, find each
    call's statements in the server's log (--server-log).
    """
    calls = []
    while True:
        started = datetime.now(timezone.utc)
        seconds, body = timed_call(server, path)
        calls.append((seconds, body, (started, datetime.now(timezone.utc))))
        if body["complete"]:
            return calls
        check(len(calls) < 10_000, f"{path} makes progress")


def totals_of(calls):
    """(seconds in all, the calls' results added up, their windows) of calls_until_complete."""
    results = calls[0][1]["results"]
    for _, body, _ in calls[1:]:
        results = add_up(results, body["results"])
    return sum(seconds for seconds, _, _ in calls), results, [window for _, _, window in calls]


def add_up(results, more):
    """Two calls' results, count by count."""
    return {k: v + more[k] if isinstance(v, int) else v for k, v in results.items()}


def worker_peak_rss_mb(server):
    """The peak resident memory of the server's one worker, in MB."""
    status = Path(f"/proc/{server.worker_pid()}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def cli(bench, name, *args):
    """Run `python -m credits ARGS` on database `name`; answers (seconds, JSON it printed)."""
    env = {**os.environ, "DATABASE_URL": bench.url(name), "CRON_SECRET": SECRET}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "credits", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, json.loads(done.stdout.splitlines()[-1])


def check(condition, what):
    if not condition:
        raise click.ClickException(f"check failed: {what}")


def both_ways(bench, template, step, path, cli_args, expect):
    """Time one step through HTTP and through the CLI, each on its own copy of `template`.

    Answers {"HTTP": (seconds, database, worker peak RSS in MB), "CLI": (seconds, database)}.
    """
    measured = {}
    for how in ("HTTP", "CLI"):
        name = bench.new_database(template)
        if how == "HTTP":
            with served(bench, name) as server:
                seconds, results, _ = totals_of(calls_until_complete(server, path))
                measured[how] = (seconds, name, worker_peak_rss_mb(server))
        else:
            seconds, body = cli(bench, name, *cli_args)
            check(body["complete"], f"{step} over {how} finished")
            results = body["results"]
            measured[how] = (seconds, name)
        expect(results)
        bench.record(step, how, seconds, json.dumps(results))
    return measured


def per_user_loop(bench, name, sample):
    """The loop this service replaces: select the due, then one transaction per user."""
    with psycopg.connect(bench.url(name)) as conn:
        started = time.monotonic()
        due = conn.execute(
            "SELECT user_id, reference_id, grant_period, monthly_credits, expires_at "
            "  FROM credits.due_grants(%s, ARRAY['active'], NULL, NULL, NULL) "
            " WHERE NOT already_granted",
            (FIRST_GRANT,),
        ).fetchall()
        conn.commit()
        select_seconds = time.monotonic() - started
        started = time.monotonic()
        for user_id, reference_id, period, credits, expires_at in due[:sample]:
            with conn.transaction():
                if conn.execute(
                    "SELECT 1 FROM credits.batches "
                    " WHERE credits.reference_order(reference_id) = credits.reference_order(%s) "
                    "   AND reference_id = %s",
                    (reference_id, reference_id),
                ).fetchone():
                    continue
                [(batch_id,)] = conn.execute(
                    "INSERT INTO credits.batches (user_id, source, reference_id, grant_period, "
                    "amount, remaining, expires_at) "
                    "VALUES (%s, 'subscription', %s, %s, %s, %s, %s) RETURNING id",
                    (user_id, reference_id, period, credits, credits, expires_at),
                ).fetchall()
                conn.execute(
                    "INSERT INTO credits.transactions (user_id, batch_id, type, amount, "
                    "reference_id) VALUES (%s, %s, 'grant', %s, %s)",
                    (user_id, batch_id, credits, reference_id),
                )
                conn.execute(
                    "INSERT INTO credits.balances AS b (user_id, balance) VALUES (%s, %s) "
                    "ON CONFLICT (user_id) DO UPDATE SET balance = b.balance + excluded.balance",
                    (user_id, credits),
                )
        per_user = (time.monotonic() - started) / min(sample, len(due))
    return select_seconds + per_user * len(due), per_user


def budgeted_calls(bench, template, subscriptions, budget):
    """The first grant over HTTP in calls of `budget` seconds each, until one says complete.

    Answers the calls' seconds, the last call's totals, and each call's time outside its chunks
    when the server's log is known.
    """
    name = bench.new_database(template)
    logged(bench, name)
    with served(bench, name) as server:
        calls = calls_until_complete(
            server, f"/api/jobs/credits/grant?date={FIRST_GRANT}&budget={budget:g}"
        )
    outside = outside_chunks(bench, name, [window for _, _, window in calls])
    totals = calls[-1][1]["totals"]
    check(totals["successful"] == subscriptions, "the budgeted grant granted every subscription")
    check(
        sum(body["results"]["successful"] for _, body, _ in calls) == subscriptions,
        "the calls' results add up to the subscriptions",
    )
    [(batches,)] = bench.execute(name, "SELECT count(*) FROM credits.batches")
    check(batches == subscriptions, "one batch per subscription")
    bench.drop(name)
    return [seconds for seconds, _, _ in calls], totals, outside


# The statements of a chunk's transaction; everything else a call runs is outside its chunks.
CHUNK_STATEMENTS = {
    "next_subscription_chunk",
    "grant_due_subscriptions",
    "next_user_chunk",
    "lock_expiring_balances",
    "expire_batches",
    "advance_job_pass",
}
LOGGED = re.compile(
    r"^(\S+ \S+) UTC \[\d+\] \S+@(\S+) LOG:  duration: ([\d.]+) ms  "
    r"(?:statement|execute [^:]*): (?:-- (\w+))?"
)


def logged(bench, name):
    """Have the server log every statement on database `name`, when its log can be read."""
    if bench.server_log:
        bench.execute("postgres", f"ALTER DATABASE {name} SET log_min_duration_statement = 0")


def outside_chunks(bench, name, windows):
    """[(seconds before a call's first chunk, seconds after its last)] for each call's window,
    from the statements database `name` logged; [] when the server's log is not known."""
    if not bench.server_log:
        return []
    chunks = []  # (started, ended) of each chunk statement
    with open(bench.server_log, errors="replace") as log:
        for line in log:
            found = LOGGED.match(line)
            if found and found[2] == name and found[4] in CHUNK_STATEMENTS:
                ended = datetime.fromisoformat(found[1]).replace(tzinfo=timezone.utc)
                chunks.append((ended - timedelta(milliseconds=float(found[3])), ended))
    outside = []
    for started, ended in windows:
        inside = [c for c in chunks if started <= c[0] and c[1] <= ended]
        check(inside, "the server's log holds the call's chunks")
        first, last = min(c[0] for c in inside), max(c[1] for c in inside)
        outside.append(((first - started).total_seconds(), (ended - last).total_seconds()))
    return outside


def machine(bench):
    [(version,)] = bench.execute("postgres", "SHOW server_version")
    settings = bench.execute(
        "postgres",
        "SELECT name, setting, unit FROM pg_settings WHERE name IN "
        "('shared_buffers', 'work_mem', 'synchronous_commit', 'max_wal_size')",
    )
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "cores": os.cpu_count(),
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "postgresql": version,
        "settings": ", ".join(f"{n}={s}{u or ''}" for n, s, u in settings),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def seed_history(bench, template, months):
    """A copy of `template` with `months` monthly grants before STEADY_DAY's month, all expired.

    Set-based: each month's batches, their grant and expire ledger entries and the records
    of the last granted month are written by a few INSERT ... SELECT, as the jobs would have
    left them; then the grant of the day before STEADY_DAY runs as the service runs it.
    """
    name = bench.new_database(template)
    steady_month = STEADY_DAY.replace(day=1)
    bench.execute(
        name,
        "INSERT INTO credits.batches (user_id, source, reference_id, grant_period, amount, "
        "       remaining, granted_at, expires_at, status) "
        "SELECT s.user_id, 'subscription', 'subscription:' || s.id || ':' || to_char(m, "
        "       'YYYY-MM'), to_char(m, 'YYYY-MM'), p.monthly_credits, 0, due.day, "
        "       due.day + interval '30 days', 'expired' "
        "  FROM generate_series(%(first)s::date - make_interval(months => %(months)s), "
        "                       %(first)s::date - interval '1 month', interval '1 month') AS m "
        " CROSS JOIN credits.subscriptions s "
        "  JOIN credits.plans p ON p.plan_id = s.plan_id "
        " CROSS JOIN LATERAL (SELECT credits.due_day(s.started_at, m::date)::timestamptz "
        "                            AS day) due "
        " ORDER BY m, s.id",
        {"first": steady_month, "months": months},
    )
    bench.execute(
        name,
        "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id, "
        "       created_at) "
        "SELECT user_id, id, 'grant', amount, reference_id, granted_at FROM credits.batches "
        "UNION ALL "
        "SELECT user_id, id, 'expire', -amount, 'expire:' || id, expires_at "
        "  FROM credits.batches",
    )
    bench.execute(
        name,
        "INSERT INTO credits.balances (user_id, balance) "
        "SELECT DISTINCT user_id, 0 FROM credits.subscriptions",
    )
    bench.execute(
        name,
        "INSERT INTO credits.subscription_grants (subscription_id, period_start) "
        "SELECT id, %s::date - interval '1 month' FROM credits.subscriptions",
        (steady_month,),
    )
    bench.execute(name, "VACUUM ANALYZE")
    cli(bench, name, "grant", f"--date={STEADY_DAY.replace(day=STEADY_DAY.day - 1)}")
    return name


def history_growth(bench, template, spends):
    """The steady-state day and single spends after 1 and after 24 months of history.

    Both histories are seeded first; the day runs three times on fresh copies of each,
    alternately (the median counts), then on three days in a row on each database itself, as
    a service's database lives, alternately (the median counts); the spends alternate between
    the two in rounds, so that the machine's other load weighs on both alike.
    """
    names = {months: seed_history(bench, template, months) for months in (1, 24)}
    sizes = {months: relation_sizes(bench, name) for months, name in names.items()}
    due = {
        months: bench.execute(
            name,
            "SELECT count(*) FROM credits.due_grants(%s, ARRAY['active'], NULL, NULL, NULL) "
            " WHERE NOT already_granted",
            (STEADY_DAY,),
        )[0][0]
        for months, name in names.items()
    }
    # Each history's day on fresh copies, alternately; the median of the rounds counts.
    timings = {months: [] for months in names}
    for _ in range(3):
        for months, name in names.items():
            copy = bench.new_database(name)
            seconds, granted = grant_day(
                bench, copy, STEADY_DAY, f"steady-state day, {months} months"
            )
            bench.drop(copy)
            check(granted == due[months], "the steady day granted the due")
            timings[months].append(seconds)
    days = {months: median(times) for months, times in timings.items()}
    # A copy of many GB is a cold start for the caches, which a service's database is not:
    # the days that follow, on each database itself.
    in_a_row = {months: [] for months in names}
    for later in range(DAYS_IN_A_ROW):
        day = STEADY_DAY + timedelta(days=later)
        for months, name in names.items():
            seconds, granted = grant_day(
                bench, name, day, f"day {day.day}, {months} months, itself"
            )
            check(granted > 0, "the day granted the due")
            in_a_row[months].append(seconds)
    warm = {months: median(times) for months, times in in_a_row.items()}
    spent = {months: 0.0 for months in names}
    rounds = 5
    for _ in range(rounds):
        for months, name in names.items():
            spent[months] += spend_seconds(bench, name, spends // rounds)
    rows = {}
    for months, name in names.items():
        spend = spent[months] / rounds
        bench.record(f"one spend, {months} months", "SQL", spend, f"mean of {spends:,} spends")
        violations = invariant_violations(bench.url(name))[1]
        check(violations == 0, "every balance adds up after the history")
        rows[months] = (days[months], warm[months], spend, sizes[months])
    return rows


def grant_day(bench, name, day, step):
    """The grant of `day` on database `name` by the CLI, run to the end and recorded as `step`;
    answers (seconds, subscriptions granted)."""
    seconds, body = cli(bench, name, "grant", f"--date={day}")
    check(body["complete"], "the day finished")
    bench.record(step, "CLI", seconds, json.dumps(body["results"]))
    return seconds, body["results"]["successful"]


def spend_seconds(bench, name, spends):
    """The mean time of one spend of 1 credit at SPEND_AT, by the service's own code, over many
    users."""
    from credits import config, ledger

    settings = config.Settings.from_mapping({"DATABASE_URL": bench.url(name)})
    pool = db.open_pool(settings, max_size=1)
    try:
        users = [
            user
            for (user,) in bench.execute(
                name,
                "SELECT user_id FROM credits.balances WHERE balance > 0 ORDER BY random() LIMIT %s",
                (spends,),
            )
        ]
        started = time.monotonic()
        for user in users:
            reference = f"bench-{uuid.uuid4().hex}"
            ledger.spend(pool, ledger.SpendRequest(user, reference, amount=1, at=SPEND_AT))
        return (time.monotonic() - started) / len(users)
    finally:
        pool.close()


def relation_sizes(bench, name, tables="batches|transactions|balances|subscription_grants"):
    """Rows and bytes of the service's tables and indexes whose names start with `tables`."""
    bench.execute(name, "ANALYZE")
    return bench.execute(
        name,
        "SELECT c.relname, c.relkind, c.reltuples::bigint AS rows, "
        "       pg_relation_size(c.oid) AS bytes "
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = 'credits' AND c.relkind IN ('r', 'i') "
        "   AND c.relname ~ %s ORDER BY c.relname",
        (f"^({tables})",),
    )


def growth_report(n, rows, info, command):
    """The Markdown of the growth run, between its own markers."""
    (day1, warm1, spend1, sizes1), (day24, warm24, spend24, sizes24) = rows[1], rows[24]
    lines = [
        GROWTH_BEGIN,
        f"Run on {date.today()} with:",
        "",
        f"    {command}",
        "",
        f"Machine: {info['cores']} cores, {info['memory']} memory; PostgreSQL "
        f"{info['postgresql']}. N = {n:,} subscriptions.",
        "",
        "| history | steady-state day (CLI), fresh copy | a day (CLI), the database itself "
        "| one spend |",
        "|---|---:|---:|---:|",
        f"| 1 month | {day1:.2f} s | {warm1:.2f} s | {spend1 * 1000:.2f} ms |",
        f"| 24 months | {day24:.2f} s | {warm24:.2f} s | {spend24 * 1000:.2f} ms |",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    for label, ratio in (
        ("steady-state day, fresh copy", day24 / day1),
        ("a day, the database itself", warm24 / warm1),
        ("one spend", spend24 / spend1),
    ):
        verdict = "met" if ratio <= 1.2 else "**not met**"
        lines.append(f"| {label}, 24 months <= 1.2 x 1 month | {ratio:.2f} x | {verdict} |")
    lines += [
        "",
        "| relation | kind | rows, 1 month | MB, 1 month | rows, 24 months | MB, 24 months |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (rel, kind, r1, b1), (_, _, r24, b24) in zip(sizes1, sizes24, strict=True):
        kind = "table" if kind == "r" else "index"
        lines.append(
            f"| {rel} | {kind} | {r1:,} | {b1 / 2**20:.0f} | {r24:,} | {b24 / 2**20:.0f} |"
        )
    lines.append(GROWTH_END)
    return "\n".join(lines)


@dataclass
class Results:
    """What the scale run measured, for its report."""

    n: int
    info: dict
    command: str
    budget: float
    targets: list = field(default_factory=list)  # (target, measured, met)
    rss: tuple = ()  # the worker's peak RSS in MB at N and at N/10
    calls: list = field(default_factory=list)  # seconds of each budgeted call
    totals: dict = field(default_factory=dict)  # the last budgeted call's totals
    sizes: list = field(default_factory=list)  # (relation, kind, rows, bytes)
    large: bool = False  # HTTP only, copies dropped as it goes (--large)
    outside: list = field(default_factory=list)  # (step, call, s before 1st chunk, s after last)


def report(bench, results):
    """The Markdown the benchmark writes between its markers in docs/PERFORMANCE.md."""
    info, calls = results.info, results.calls
    lines = [
        BEGIN,
        f"Run on {date.today()} with:",
        "",
        f"    {results.command}",
        "",
        f"Machine: {info['cores']} cores, {info['memory']} memory, {info['system']}, "
        f"Python {info['python']}; PostgreSQL {info['postgresql']} ({info['settings']}).",
        "",
        f"N = {results.n:,} subscriptions.",
        "",
        "| step | via | seconds | results |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {step} | {how} | {s:.2f} | `{note}` |" for step, how, s, note in bench.rows]
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'met' if ok else '**not met**'} |" for t, m, ok in results.targets]
    if results.outside:
        lines += [
            "",
            "Each call's time outside its chunks (from the server's statement log):",
            "",
            "| step | call | before its first chunk, s | after its last chunk, s |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {step} | {call} | {before:.2f} | {after:.2f} |"
            for step, call, before, after in results.outside
        ]
    lines += [
        "",
        f"Peak memory (RSS) of the gunicorn worker after the first grant: {results.rss[0]:.1f} MB "
        f"at N, {results.rss[1]:.1f} MB at N/10.",
        "",
        f"Budgeted first grant over HTTP, `budget={results.budget:g}` a call: {len(calls)} calls, "
        f"longest {max(calls):.2f} s, total {sum(calls):.2f} s; the last call's totals: "
        f"`{json.dumps(results.totals)}`.",
        "",
        "Sizes after the steady-state day ("
        + (
            "one and a half months of grants"
            if results.large
            else "four and a half months of grants, expired batches kept"
        )
        + "):",
        "",
        "| relation | kind | rows | MB | bytes a row |",
        "|---|---|---:|---:|---:|",
    ]
    for name, kind, rows, size in results.sizes:
        kind = "table" if kind == "r" else "index"
        per_row = f"{size / rows:.0f}" if rows > 0 else "-"
        lines.append(f"| {name} | {kind} | {rows:,} | {size / 2**20:.0f} | {per_row} |")
    lines.append(END)
    return "\n".join(lines)


def write_report(path, text, begin=BEGIN, end=END):
    """Replace the section of `path` between begin and end (or append it) with `text`."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[: old.index(begin)] + text + old[old.index(end) + len(end) :]
    else:
        new = old + ("\n" if old else "") + text + "\n"
    path.write_text(new)


@click.command()
@click.option("--server", "server_url", help="A PostgreSQL server URL (default: embedded).")
@click.option("--subscriptions", default=1_000_000, show_default=True, help="N.")
@click.option("--loop-sample", default=2000, show_default=True, help="Users timed in the loop.")
@click.option("--budget", default=8.0, show_default=True, help="Seconds per budgeted call.")
@click.option("--write", "write_path", type=click.Path(dir_okay=False), help="Markdown file.")
@click.option(
    "--growth",
    "growth_only",
    is_flag=True,
    help="Only the steady day and spends at 1 and 24 months of history.",
)
@click.option("--spends", default=500, show_default=True, help="Spends timed in the growth run.")
@click.option(
    "--large",
    is_flag=True,
    help="For tens of millions: HTTP only, each copy dropped once measured, the steady day "
    "after one month of history.",
)
@click.option(
    "--server-log",
    type=click.Path(exists=True, dir_okay=False),
    help="The server's log file (local servers): each call's time outside its chunks is read "
    "from its statements there.",
)
def main(
    server_url,
    subscriptions,
    loop_sample,
    budget,
    write_path,
    growth_only,
    spends,
    large,
    server_log,
):
    """Measure grant and expire at N subscriptions against the floor, via HTTP and the CLI."""
    command = "python -m bench.run " + " ".join(sys.argv[1:])
    with ExitStack() as stack:
        if server_url is None:
            data_dir = ROOT / ".credits" / "bench-pgdata"
            server_url = stack.enter_context(embedded_server(data_dir))
        bench = Bench(server_url, click.echo)
        stack.callback(bench.drop_all)
        info = machine(bench)
        base = seed(bench, subscriptions)
        if growth_only:
            rows = history_growth(bench, base, spends)
            text = growth_report(subscriptions, rows, info, command)
            begin, end = GROWTH_BEGIN, GROWTH_END
        else:
            results = Results(subscriptions, info, command, budget, large=large)
            bench.server_log = server_log
            scale(bench, base, results, loop_sample)
            text, begin, end = report(bench, results), BEGIN, END
        click.echo(text)
        if write_path:
            write_report(write_path, text, begin, end)


def scale(bench, base, results, loop_sample):
    """Every step at N against the floor; fills in `results`."""
    n = results.n
    floor_seconds = floor(bench, bench.new_database(base))
    bench.record("floor: INSERT ... SELECT", "SQL", floor_seconds, f"{n:,} rows")
    if results.large:
        granted, again, expired, steady_day = large_steps(bench, base, results)
        results.sizes = relation_sizes(bench, granted["HTTP"][1], "batches|transactions|balances")
    else:
        granted, again, expired = first_grant_and_expire(bench, base, n)
        steady_day, results.sizes = steady_state(bench, granted["CLI"][1])
    loop_seconds, per_user = per_user_loop(bench, bench.new_database(base), loop_sample)
    bench.record(
        "per-user loop, scaled to N",
        "SQL",
        loop_seconds,
        f"{per_user * 1000:.2f} ms a user, timed over {loop_sample:,} users",
    )
    small = seed(bench, n // 10)
    with served(bench, bench.new_database(small)) as server:
        tenth, _, _ = totals_of(
            calls_until_complete(server, f"/api/jobs/credits/grant?date={FIRST_GRANT}&budget=270")
        )
        results.rss = (granted["HTTP"][2], worker_peak_rss_mb(server))
    bench.record("grant, first run, N/10", "HTTP", tenth, f"{n // 10:,} subscriptions")
    results.calls, results.totals, outside = budgeted_calls(bench, base, n, results.budget)
    results.outside += [
        (f"budgeted first grant, budget={results.budget:g}", call, before, after)
        for call, (before, after) in enumerate(outside, 1)
    ]
    for how in ("HTTP",) if results.large else ("HTTP", "CLI"):
        for label, measured, limit in [
            ("grant, first run", granted, 3.0),
            ("expire N batches", expired, 3.0),
            ("grant again, nothing to do", again, 0.5),
            ("steady-state day", steady_day, 0.3),
        ]:
            ratio = measured[how][0] / floor_seconds
            results.targets.append(
                (f"{label} ({how}) <= {limit} x floor", f"{ratio:.2f} x", ratio <= limit)
            )
    how = "HTTP" if results.large else "CLI"
    loop_ratio = loop_seconds / granted[how][0]
    results.targets.append(
        (f"per-user loop / grant ({how}) >= 50", f"{loop_ratio:.0f} x", loop_ratio >= 50)
    )
    budgeted = [b + a for step, _, b, a in results.outside if step.startswith("budgeted")]
    if budgeted:
        # A call with the whole pass in its budget also folds the ledger it wrote after its
        # last chunk (the table shows it); a budgeted call folds only in what its budget left.
        results.targets.append(
            (
                f"a budgeted call's time outside its chunks (budget={results.budget:g}) <= 1 s",
                f"{max(budgeted):.2f} s at most",
                max(budgeted) <= 1,
            )
        )
    growth = granted["HTTP"][0] / tenth
    results.targets.append(("grant, first run: N / N/10 <= 11 x", f"{growth:.2f} x", growth <= 11))
    growth = results.rss[0] - results.rss[1]
    results.targets.append(("RSS at N - RSS at N/10 <= 20 MB", f"{growth:.1f} MB", growth <= 20))


def first_grant_and_expire(bench, base, n):
    """The first grant, the same grant again, and the expiry of its N batches, both ways."""
    first = f"/api/jobs/credits/grant?date={FIRST_GRANT}&budget=270"
    grant_args = ["grant", f"--date={FIRST_GRANT}"]

    def all_granted(results):
        check(results["successful"] == n, "first grant granted every subscription")

    def none_granted(results):
        check(results["successful"] == 0 and results["skipped"] == n, "re-run granted none")

    def all_expired(results):
        check(results["processedBatches"] == n, "expire closed every batch")

    granted = both_ways(bench, base, "grant, first run", first, grant_args, all_granted)
    done = granted["HTTP"][1]
    # As autovacuum leaves the tables minutes after a big grant: the next steps are planned
    # with statistics that know the batches, not with those of the empty tables.
    bench.execute(done, "VACUUM ANALYZE")
    again = both_ways(bench, done, "grant again, nothing to do", first, grant_args, none_granted)
    expire = "/api/jobs/credits/expire?budget=270"
    expired = both_ways(bench, done, "expire N batches", expire, ["expire"], all_expired)
    return granted, again, expired


def large_steps(bench, base, results):
    """The steps at tens of millions, over HTTP, within one database's room to spare: the first
    grant on a copy of `base`, which then serves the re-run, a copy of it for the expire (dropped
    once measured), and the steady day after one month of history (the grant of the day before
    done first), on that database itself.

    Answers {"HTTP": (seconds, database, ...)} for the first grant, the re-run, the expire and the
    steady day; each call's time outside its chunks goes to results.outside.
    """
    n = results.n
    first = f"/api/jobs/credits/grant?date={FIRST_GRANT}&budget=270"
    done = bench.new_database(base)
    logged(bench, done)

    def measure(name, step, path, expect):
        with served(bench, name) as server:
            seconds, answer, windows = totals_of(calls_until_complete(server, path))
            rss = worker_peak_rss_mb(server)
        expect(answer)
        bench.record(step, "HTTP", seconds, json.dumps(answer))
        results.outside += [
            (step, call, before, after)
            for call, (before, after) in enumerate(outside_chunks(bench, name, windows), 1)
        ]
        return {"HTTP": (seconds, name, rss)}

    granted = measure(
        done,
        "grant, first run",
        first,
        lambda r: check(r["successful"] == n, "first grant granted every subscription"),
    )
    bench.execute(done, "VACUUM ANALYZE")  # as autovacuum leaves it (first_grant_and_expire)
    again = measure(
        done,
        "grant again, nothing to do",
        first,
        lambda r: check(r["successful"] == 0 and r["skipped"] == n, "re-run granted none"),
    )
    copy = bench.new_database(done)
    logged(bench, copy)
    expired = measure(
        copy,
        "expire N batches",
        "/api/jobs/credits/expire?budget=270",
        lambda r: check(r["processedBatches"] == n, "expire closed every batch"),
    )
    bench.drop(copy)
    day = STEADY_DAY.replace(month=FIRST_GRANT.month + 1)
    cli(bench, done, "grant", f"--date={day - timedelta(days=1)}")
    bench.execute(done, "VACUUM ANALYZE")
    [(due_today,)] = bench.execute(
        done,
        "SELECT count(*) FROM credits.due_grants(%s, ARRAY['active'], NULL, NULL, NULL) "
        " WHERE NOT already_granted",
        (day,),
    )
    steady_day = measure(
        done,
        f"steady-state day, {due_today:,} due, one month of history",
        f"/api/jobs/credits/grant?date={day}&budget=270",
        lambda r: check(r["successful"] == due_today, "steady day granted the day's due"),
    )
    return granted, again, expired, steady_day


def steady_state(bench, history):
    """The steady-state day after a history of monthly grants on `history`, both ways.

    Answers its measurements and the sizes of the tables after it.
    """
    for day in HISTORY:
        cli(bench, history, "grant", f"--date={day}")
    cli(bench, history, "expire")
    cli(bench, history, "grant", f"--date={STEADY_DAY.replace(day=STEADY_DAY.day - 1)}")
    bench.execute(history, "VACUUM ANALYZE")  # months of history: autovacuum has been by
    [(due_today,)] = bench.execute(
        history,
        "SELECT count(*) FROM credits.due_grants(%s, ARRAY['active'], NULL, NULL, NULL) "
        " WHERE NOT already_granted",
        (STEADY_DAY,),
    )

    def steady(results):
        check(results["successful"] == due_today, "steady day granted the day's due")

    steady_day = both_ways(
        bench,
        history,
        f"steady-state day, {due_today:,} due",
        f"/api/jobs/credits/grant?date={STEADY_DAY}&budget=270",
        ["grant", f"--date={STEADY_DAY}"],
        steady,
    )
    sizes = relation_sizes(bench, steady_day["CLI"][1], "batches|transactions|balances")
    return steady_day, sizes


if __name__ == "__main__":
    main()
