"""The events' cost at scale: the first grant of N subscriptions with the events outbox on and
off, and the expiring-soon scan of N batches, against the floor of bench/run.py, in one run.

    python -m bench.events --server postgresql://postgres@127.0.0.1:5432/postgres \
        --subscriptions 1000000

The grant "off" is the same grant with the outbox's triggers disabled on its copy. The scan's
payloads and its writes are then timed apart on the granted database (SCAN_PARTS).
"""

import time
from datetime import datetime, timezone
from statistics import median

import click
import psycopg
from psycopg.rows import dict_row

from bench.run import FIRST_GRANT, benched, check, cli, floor, seed
from credits import events

TRIGGERS = (
    "ALTER TABLE credits.transactions DISABLE TRIGGER transactions_events",
    "ALTER TABLE credits.balances DISABLE TRIGGER balances_events",
)
# The batches of the first grant lapse from 31 July to 30 August: a scan on 25 July with a
# 40-day notice announces them all.
SCAN_AT = datetime(2026, 7, 25, tzinfo=timezone.utc)
ROUNDS = 2
# The scan's two costs apart, on the granted database: its payloads built and nothing written,
# and its rows written with a payload of the same size built once. The payload is the one of
# sql/notice_expiring_batches.sql; every batch of the first grant is in the scan's reach.
SCAN_PARTS = {
    "scan's payloads built, nothing written": """
        SELECT count(jsonb_build_object('user_id', user_id, 'batch_id', id, 'amount', remaining,
                                        'expires_at', expires_at))
          FROM credits.batches WHERE status = 'active'""",
    "scan's rows written, payload built once": """
        INSERT INTO credits.events (type, user_id, payload)
        SELECT 'credits.expiring_soon', user_id, p.payload
          FROM credits.batches,
               (SELECT jsonb_build_object('user_id', 'user_1000000', 'batch_id', 1000000,
                                          'amount', 100, 'expires_at', now()) AS payload) p
         WHERE status = 'active'""",
}


def timed_grant(bench, base, n, events_on):
    """Seconds of the CLI's first grant on a copy of base; answers (seconds, database)."""
    name = bench.new_database(base)
    if not events_on:
        for statement in TRIGGERS:
            bench.execute(name, statement)
    seconds, body = cli(bench, name, "grant", f"--date={FIRST_GRANT}")
    check(body["results"]["successful"] == n, "the grant granted every subscription")
    [(written,)] = bench.execute(name, "SELECT count(*) FROM credits.events")
    check(written == (n if events_on else 0), "one event per grant, none with the outbox off")
    return seconds, name


def timed_scan(bench, name, n):
    """Seconds of the expiring-soon scan over the N batches of the granted database."""
    bench.execute(name, "INSERT INTO credits.notifications VALUES (true, 40, NULL)")
    bench.execute(name, "VACUUM ANALYZE")
    bench.execute(name, "CHECKPOINT")  # as the floor starts (its copy of a database just made one)
    with psycopg.connect(bench.url(name), row_factory=dict_row) as conn:
        started = time.monotonic()
        with conn.transaction():  # as the expire job runs it
            noticed = events.notice_expiring(conn, SCAN_AT)
        seconds = time.monotonic() - started
    check(noticed == n, "every batch announced once")
    return seconds


def timed_part(bench, name, statement):
    """Seconds of one part of the scan, in a transaction rolled back (then vacuumed away)."""
    bench.execute(name, "CHECKPOINT")
    with psycopg.connect(bench.url(name)) as conn:
        started = time.monotonic()
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
        seconds = time.monotonic() - started
    bench.execute(name, "VACUUM credits.events")
    return seconds


@click.command()
@click.option("--server", "server_url", default=None, help="PostgreSQL server URL.")
@click.option("--subscriptions", default=1_000_000, show_default=True)
def main(server_url, subscriptions):
    """Measure the outbox's cost on the grant and the expiring-soon scan against the floor."""
    with benched(server_url) as bench:
        base = seed(bench, subscriptions)
        floor_seconds = floor(bench, bench.new_database(base))
        bench.record("floor: INSERT ... SELECT", "SQL", floor_seconds, f"{subscriptions:,} rows")
        # Off and on in turn, twice: the machine's load moves between runs; medians compared.
        times = {False: [], True: []}
        for _ in range(ROUNDS):
            for events_on in (False, True):
                seconds, name = timed_grant(bench, base, subscriptions, events_on)
                times[events_on].append(seconds)
                bench.drop(name)
        off, on = median(times[False]), median(times[True])
        bench.record("grant, first run, events off", "CLI", off, f"median of {times[False]}")
        bench.record("grant, first run, events on", "CLI", on, f"{on / off:.2f} x off")
        _, name = timed_grant(bench, base, subscriptions, events_on=True)
        scan = timed_scan(bench, name, subscriptions)
        bench.record("expiring-soon scan", "SQL", scan, f"{scan / floor_seconds:.2f} x floor")
        for part, statement in SCAN_PARTS.items():
            seconds = timed_part(bench, name, statement)
            bench.record(part, "SQL", seconds, f"{seconds / floor_seconds:.2f} x floor")


if __name__ == "__main__":
    main()
