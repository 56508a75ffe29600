"""The writes' own floor: the rows a first grant and an expire of N subscriptions must write,
each table's written by one bare statement into a copy of it with its indexes (no lookups, no
locks, no ON CONFLICT), against the floor of bench/run.py, in one run.

    python -m bench.writes --server postgresql://postgres@127.0.0.1:5432/postgres \
        --subscriptions 1000000

A first grant writes, per subscription, a batch, a balance, a ledger entry, the record of the
grant and its credits.granted event; an expire changes the batch and the balance and writes a
ledger entry and a credits.expired event. Each statement is timed alone after a checkpoint, the
expire's on the rows the grant's wrote; then each job's statements again over two halves of
the users at once, on two connections, as the jobs' two stripes run. The payloads have the
shape of sql/functions/70_events.sql's.
"""

import threading
import time

import click
import psycopg

from bench.run import benched, floor, seed

TABLES = ("batches", "balances", "transactions", "subscription_grants", "events")
# A batch id for each subscription: the number in its id as bench.run's seed writes it
# (sub_00000001); the run's job id.
JOB_ID = "6b9c7aaf-48d3-4006-8000-000000000000"
GRANT = {
    "batches": """
        INSERT INTO public.batches
               (user_id, source, reference_id, grant_period, amount, remaining, expires_at)
        SELECT user_id, 'subscription', 'subscription:' || id || ':2026-07', '2026-07', 100, 100,
               timestamptz '2026-08-30'
          FROM credits.subscriptions WHERE {where}""",
    "balances": """
        INSERT INTO public.balances (user_id, balance)
        SELECT user_id, 100 FROM credits.subscriptions WHERE {where}""",
    "transactions": f"""
        INSERT INTO public.transactions
               (user_id, batch_id, type, amount, reference_id, job_id, balance_after)
        SELECT user_id, substr(id, 5)::bigint, 'grant', 100, 'subscription:' || id || ':2026-07',
               '{JOB_ID}', 100
          FROM credits.subscriptions WHERE {{where}}""",
    "subscription_grants": """
        INSERT INTO public.subscription_grants
        SELECT id, date '2026-07-01' FROM credits.subscriptions WHERE {where}""",
    "events": f"""
        INSERT INTO public.events (type, user_id, payload)
        SELECT 'credits.granted', user_id,
               jsonb_build_object('user_id', user_id,
                                  'reference_id', 'subscription:' || id || ':2026-07',
                                  'amount', 100, 'balance', 100,
                                  'batch_id', substr(id, 5)::bigint, 'source', 'subscription',
                                  'job_id', '{JOB_ID}'::uuid, 'metadata', NULL::jsonb)
          FROM credits.subscriptions WHERE {{where}}""",
}
EXPIRE = {
    "batches": "UPDATE public.batches SET status = 'expired', remaining = 0 "
    "WHERE status = 'active' AND {where}",
    "balances": "UPDATE public.balances SET balance = 0, updated_at = now() WHERE {where}",
    "transactions": f"""
        INSERT INTO public.transactions
               (user_id, batch_id, type, amount, reference_id, job_id, balance_after)
        SELECT user_id, substr(id, 5)::bigint, 'expire', -100,
               'subscription:' || id || ':2026-07', '{JOB_ID}', 0
          FROM credits.subscriptions WHERE {{where}}""",
    "events": f"""
        INSERT INTO public.events (type, user_id, payload)
        SELECT 'credits.expired', user_id,
               jsonb_build_object('user_id', user_id, 'amount', 100, 'balance', 0,
                                  'batches', jsonb_build_array(jsonb_build_object(
                                      'batch_id', substr(id, 5)::bigint, 'amount', 100)),
                                  'job_id', '{JOB_ID}'::uuid)
          FROM credits.subscriptions WHERE {{where}}""",
}


def timed(bench, name, statement):
    """Seconds of one statement, after a checkpoint (the floor's database has just made one)."""
    bench.execute(name, "CHECKPOINT")
    started = time.monotonic()
    bench.execute(name, statement)
    return time.monotonic() - started


def timed_halves(bench, name, statements):
    """Seconds of statements run over two halves of the users at once, one connection each."""
    [(middle,)] = bench.execute(
        name,
        "SELECT user_id FROM credits.subscriptions ORDER BY user_id "
        "OFFSET (SELECT count(*) / 2 FROM credits.subscriptions) LIMIT 1",
    )
    halves = [f"user_id < '{middle}'", f"user_id >= '{middle}'"]
    errors = []

    def write(where):
        try:
            with psycopg.connect(bench.url(name), autocommit=True) as conn:
                for statement in statements.values():
                    conn.execute(statement.format(where=where))
        except psycopg.Error as error:
            errors.append(error)

    bench.execute(name, "CHECKPOINT")
    threads = [threading.Thread(target=write, args=(where,)) for where in halves]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise click.ClickException(f"a half failed: {errors[0]}")
    return time.monotonic() - started


@click.command()
@click.option("--server", "server_url", default=None, help="PostgreSQL server URL.")
@click.option("--subscriptions", default=1_000_000, show_default=True)
def main(server_url, subscriptions):
    """Measure the rows a first grant and an expire must write against the floor."""
    with benched(server_url) as bench:
        name = bench.new_database(seed(bench, subscriptions))
        floor_seconds = floor(bench, name)
        bench.record("floor: INSERT ... SELECT", "SQL", floor_seconds, f"{subscriptions:,} rows")
        for table in TABLES:
            bench.execute(name, f"CREATE TABLE public.{table} (LIKE credits.{table} INCLUDING ALL)")

        def measured(step, seconds):
            bench.record(step, "SQL", seconds, f"{seconds / floor_seconds:.2f} x floor")
            return seconds

        for job, statements in (("first grant", GRANT), ("expire", EXPIRE)):
            alone = sum(
                measured(f"{job}'s {table}", timed(bench, name, statement.format(where="true")))
                for table, statement in statements.items()
            )
            measured(f"{job}'s writes, one after another", alone)
            bench.execute(name, "VACUUM ANALYZE")
        bench.execute(name, f"TRUNCATE {', '.join(f'public.{table}' for table in TABLES)}")
        for job, statements in (("first grant", GRANT), ("expire", EXPIRE)):
            measured(f"{job}'s writes, two halves at once", timed_halves(bench, name, statements))
            bench.execute(name, "VACUUM ANALYZE")


if __name__ == "__main__":
    main()
