"""The console benchmark: each page's server time on N users with M months of ledger history.

    python -m bench.console --server postgresql://postgres@127.0.0.1:5432/postgres \
        --users 1000000 --months 24 --write docs/PERFORMANCE.md

The history is written set-based, as the jobs and the functions would have left it: every
user has a subscription and a batch granted each month, expiring 30 days later; one user in
four spends half of each batch ten days after its grant; what remains of a batch is expired
when it lapses; the jobs ran twice a day. Then each page is asked for through the app (Flask's
test client, a signed-in viewer) --rounds times, and its median server time is reported.
"""

import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

import click
import psycopg
from psycopg.conninfo import make_conninfo

from bench.run import machine, write_report
from testing.databases import create_database, drop_database, migrate, unique_name

BEGIN, END = "<!-- console-bench:begin -->", "<!-- console-bench:end -->"
TARGET_MS = 300
SECRET = "console-bench-secret"
KEY = "console-bench-key-0123456789abcdef0123"
PASSWORD = "console bench password"


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
