"""The spend benchmark: credits.spend calls a second at N concurrent clients over many users and
for one hot user, beside a floor measured in the same run: a bare one-row
`UPDATE credits.balances SET balance = balance - 1` per call at the same concurrency.

    python -m bench.spend --server postgresql://postgres@127.0.0.1:5432/postgres \
        --users 10000 --clients 8 --write docs/PERFORMANCE.md

Each call is its own transaction (autocommit), from its own connection per client, as an app
calls it. The floor and the spends alternate over --rounds, so a slower moment of a shared
machine lands on both. Target: spends at least 0.5 x the floor over many users.
"""

import random
import threading
import time
import uuid
from pathlib import Path

import click
import psycopg

from testing.databases import migrate, scratch_database

BEGIN, END = "<!-- spend-bench:begin -->", "<!-- spend-bench:end -->"
TARGET = 0.5
FLOOR = "UPDATE credits.balances SET balance = balance - 1 WHERE user_id = %s"
SPEND = "SELECT credits.spend(%s, 1, %s)"


def seed(url, users):
    """users users, each with a balance and two batches: one expiring, one never."""
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO credits.batches (user_id, source, reference_id, amount, remaining,"
            " expires_at) "
            "SELECT 'user-' || i, 'promotion', 'seed-' || i || '-' || k, 1000000, 1000000,"
            "       CASE WHEN k = 1 THEN now() + interval '1 year' END "
            "  FROM generate_series(1, %s) i, generate_series(1, 2) k",
            (users,),
        )
        conn.execute(
            "INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id,"
            " balance_after) "
            "SELECT user_id, id, 'grant', amount, reference_id, amount FROM credits.batches"
        )
        conn.execute(
            "INSERT INTO credits.balances (user_id, balance) "
            "SELECT user_id, sum(amount) FROM credits.batches GROUP BY user_id"
        )
        conn.execute("VACUUM ANALYZE")


def rate(url, statement, pick_user, clients, seconds):
    """Calls a second of statement by `clients` connections, each in a loop for `seconds`."""
    counts = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(n):
        rng = random.Random(n)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT 1")
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                user = pick_user(rng)
                params = (user,) if statement == FLOOR else (user, f"s{n}-{uuid.uuid4().hex}")
                conn.execute(statement, params)
                counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - began)


def report(figures, users, clients, seconds, rounds):
    """The Spending section's text between its markers."""
    lines = [
        BEGIN,
        "",
        f"Measured by `python -m bench.spend --users {users} --clients {clients} "
        f"--seconds {seconds} --rounds {rounds}` (one run; each figure the mean of its rounds).",
        "",
        "| workload | floor (bare UPDATE)/s | credits.spend/s | spend / floor |",
        "|---|---|---|---|",
    ]
    for name, (floor, spend) in figures.items():
        lines.append(f"| {name} | {floor:,.0f} | {spend:,.0f} | {spend / floor:.2f} x floor |")
    many = figures[f"{users:,} users"]
    ratio = many[1] / many[0]
    verdict = "met" if ratio >= TARGET else "missed"
    lines += [
        "",
        f"Verdict: target {TARGET} x floor over many users {verdict} ({ratio:.2f} x).",
        "",
        END,
    ]
    return "\n".join(lines)


def write_report(path, text):
    """Replace the text between the markers, or add it at the end."""
    old = path.read_text(encoding="utf-8")
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new, encoding="utf-8")


@click.command()
@click.option("--server", required=True, help="PostgreSQL server to make the database on.")
@click.option("--users", default=10000, show_default=True, type=click.IntRange(min=1))
@click.option("--clients", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--write", type=click.Path(dir_okay=False, path_type=Path), help="Report file.")
def main(server, users, clients, seconds, rounds, write):
    """Spends a second against the floor, over many users and for one hot user."""
    with scratch_database(server, "credits_spend_bench") as url:
        seed(url, users)
        workloads = {
            f"{users:,} users": lambda rng: f"user-{rng.randint(1, users)}",
            "one hot user": lambda rng: "user-1",
        }
        figures = {}
        for label, pick in workloads.items():
            floors, spends = [], []
            for n in range(rounds):
                order = [(FLOOR, floors), (SPEND, spends)]
                for statement, into in order if n % 2 == 0 else reversed(order):
                    into.append(rate(url, statement, pick, clients, seconds))
            figures[label] = (sum(floors) / rounds, sum(spends) / rounds)
            click.echo(
                f"{label}: floor {figures[label][0]:,.0f}/s, spend {figures[label][1]:,.0f}/s",
                err=True,
            )
        text = report(figures, users, clients, seconds, rounds)
        click.echo(text)
        if write:
            write_report(write, text)


if __name__ == "__main__":
    main()
