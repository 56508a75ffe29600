"""The ledger's daily summary: exactly the ledger's own sums, whatever arrives late or in flight."""

from datetime import date, datetime, timezone

import psycopg
import pytest

from credits import jobs, ledger, summary
from credits.console import reports
from credits.db import connection
from tests.console_support import KEY, PASSWORD, sign_in


def at(day, hour=12):
    """Noon (or hour) UTC on a day of March 2026."""
    return datetime(2026, 3, day, hour, tzinfo=timezone.utc)


def written_on(sql_run, day, hour=12, after=0):
    """Date the entries written today (ids after `after`) on a day of March, as if written then
    (the ledger dates an entry when its transaction starts, whatever an `*_at` call's clock)."""
    sql_run(
        "UPDATE credits.transactions SET created_at = %s "
        " WHERE created_at >= date_trunc('day', now()) AND id > %s",
        (at(day, hour), after),
    )


def catch_up(pool):
    with connection(pool) as conn:
        return summary.catch_up(conn)


def summary_by_day(sql_run):
    """The summary's rows as (day, source, granted, spent, expired, voided), in order."""
    rows = sql_run(
        "SELECT day, source, granted, spent, expired, voided FROM credits.ledger_days "
        " WHERE granted <> 0 OR spent <> 0 OR expired <> 0 OR voided <> 0 ORDER BY day, source"
    )
    return [tuple(row.values()) for row in rows]


def ledger_by_day(sql_run):
    """The same figures added up from the ledger itself, entry by entry."""
    rows = sql_run(
        "SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, "
        "       CASE WHEN t.type = 'grant' THEN b.source ELSE '' END AS source, "
        "       sum(CASE WHEN t.type = 'grant' THEN t.amount ELSE 0 END) AS granted, "
        "       sum(CASE WHEN t.type IN ('consume', 'reverse') THEN -t.amount ELSE 0 END) "
        "           AS spent, "
        "       sum(CASE WHEN t.type IN ('expire', 'lapse') THEN -t.amount ELSE 0 END) "
        "           AS expired, "
        "       sum(CASE WHEN t.type = 'void' THEN -t.amount ELSE 0 END) AS voided "
        "  FROM credits.transactions t JOIN credits.batches b ON b.id = t.batch_id "
        " GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [tuple(row.values()) for row in rows]


def month(pool, first=date(2026, 3, 1)):
    """The finance report's row for a month (March 2026 unless told)."""
    return next(m for m in reports.ledger_by_month(pool) if m["month"] == first)


@pytest.fixture
def a_month_of_everything(pool, settings, sql_run):
    """Grants, spends, a reversal, a lapse and a void on days of March; an expiry today (its run
    folds what came before), so the lapse and the void arrive after it, dated earlier."""
    ledger.grant(
        pool,
        ledger.GrantRequest("alice", 100, "promotion", "g1", at=at(1), expires_at=at(7, 0)),
    )
    ledger.grant(pool, ledger.GrantRequest("bob", 200, "adjustment", "g2", at=at(1, 23)))
    written_on(sql_run, 1, 23)
    ledger.spend(pool, ledger.SpendRequest("alice", "s1", amount=30, at=at(2)))
    ledger.spend(pool, ledger.SpendRequest("bob", "s2", amount=50, at=at(2)))
    written_on(sql_run, 2)
    ledger.reverse(pool, "bob", "s2", at=at(4))
    written_on(sql_run, 4)
    jobs.expire(pool, settings, jobs.ExpireOptions(at=at(7)))
    [expired] = sql_run("SELECT max(id) AS id FROM credits.transactions")
    ledger.reverse(pool, "alice", "s1", at=at(8))  # to an expired batch: lapses at once
    ledger.void(pool, "g2", at=at(10))
    written_on(sql_run, 8, after=expired["id"])


def test_the_summary_is_the_ledgers_own_sums_day_by_day(pool, sql_run, a_month_of_everything):
    catch_up(pool)

    assert summary_by_day(sql_run) == ledger_by_day(sql_run)
    types = {row["type"] for row in sql_run("SELECT DISTINCT type FROM credits.transactions")}
    assert types == {"grant", "consume", "reverse", "expire", "lapse", "void"}
    assert month(pool) == {
        "month": date(2026, 3, 1),
        "granted": 300,
        "granted_by_source": {"adjustment": 200, "promotion": 100},
        "spent": 0,  # 80 spent, all of it given back
        "expired": 30,  # given back to a batch expired by then
        "voided": 200,
        "outstanding": 70,  # alice's, expired today
    }
    [december] = reports.ledger_by_month(pool)[-1:]
    assert (december["expired"], december["outstanding"]) == (70, 0)


def test_the_reports_count_entries_not_yet_in_the_summary(pool, sql_run, a_month_of_everything):
    # The expire run folded the entries before it, not the lapse and void after it.
    assert 0 < sql_run("SELECT through_id FROM credits.ledger_summary")[0]["through_id"] < 9
    before = month(pool)

    catch_up(pool)

    assert month(pool) == before and before["voided"] == 200


def test_an_entry_dated_a_day_already_added_up_counts_on_that_day(pool, sql_run):
    ledger.grant(pool, ledger.GrantRequest("carol", 100, "promotion", "g3"))
    written_on(sql_run, 1)
    catch_up(pool)
    assert month(pool)["spent"] == 0

    # Commits after 1 March was added up, dated then (its transaction began that day).
    ledger.spend(pool, ledger.SpendRequest("carol", "late", amount=10))
    written_on(sql_run, 1, 23)
    assert month(pool)["spent"] == 10  # read from the tail
    catch_up(pool)

    assert month(pool)["spent"] == 10
    assert summary_by_day(sql_run) == [
        (date(2026, 3, 1), "", 0, 10, 0, 0),
        (date(2026, 3, 1), "promotion", 100, 0, 0, 0),
    ]
    assert summary_by_day(sql_run) == ledger_by_day(sql_run)


def test_an_entry_still_uncommitted_is_not_skipped_by_a_later_one(
    pool, database_url, sql_run, today
):
    with psycopg.connect(database_url) as writer:
        # Takes its ledger id first, commits last.
        writer.execute(
            "SELECT credits.grant_credits_at(%s, 'dan', 40, 'promotion', 'early')", (at(3),)
        )
        ledger.grant(pool, ledger.GrantRequest("erin", 60, "promotion", "later", at=at(3)))
        catch_up(pool)
        [latest] = sql_run("SELECT max(id) AS id FROM credits.transactions")
        through = sql_run("SELECT through_id FROM credits.ledger_summary")[0]["through_id"]
        assert through < latest["id"] - 1  # neither folded: dan's id is below erin's
        writer.commit()

    assert month(pool, today.replace(day=1))["granted"] == 100
    catch_up(pool)
    assert summary_by_day(sql_run) == ledger_by_day(sql_run)
    assert summary_by_day(sql_run) == [(today, "promotion", 100, 0, 0, 0)]


def test_each_job_run_brings_the_summary_up_to_date(
    pool, settings, add_plan, subscribe, sql_run, today
):
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")

    jobs.grant(pool, settings, date(2026, 3, 15))

    [row] = sql_run(
        "SELECT s.through_id = (SELECT max(id) FROM credits.transactions) AS current "
        "  FROM credits.ledger_summary s"
    )
    assert row["current"]
    assert summary_by_day(sql_run) == [(today, "subscription", 100, 0, 0, 0)]


def test_a_grant_runs_entries_are_folded_without_reading_their_batches(
    pool, settings, add_plan, subscribe, sql_run, today, database_url
):
    """A grant run writes millions of entries at 10,000,000 subscribers; each one's source is
    known from the entry (a run's grants are subscriptions'), and probing its batch made a third
    of folding them. Any other grant's source is still its batch's."""
    add_plan("pro", 100, 30)
    for i in range(5):
        subscribe(f"s{i}", f"user-{i}", "pro", "2026-01-10")
    jobs.grant(pool, settings, date(2026, 3, 15))
    ledger.grant(pool, ledger.GrantRequest("alice", 7, "promotion", "g1"))
    sql_run("DELETE FROM credits.ledger_days")
    sql_run("UPDATE credits.ledger_summary SET through_id = 0")
    sql_run("SELECT credits.mark_ledger_summary()")

    with psycopg.connect(database_url) as conn, conn.transaction():
        [(folded,)] = conn.execute("SELECT credits.summarise_ledger(1000)").fetchall()
        # Scans of the batches, by the table or any of its indexes, in this transaction.
        [(batch_reads,)] = conn.execute(
            "SELECT sum(pg_stat_get_xact_numscans(r)) FROM unnest(ARRAY["
            "    'credits.batches'::regclass::oid, 'credits.batches_pkey'::regclass::oid]) r"
        ).fetchall()

    assert (folded, batch_reads) == (6, 1)  # the promotion's batch only
    assert summary_by_day(sql_run) == [
        (today, "promotion", 7, 0, 0, 0),
        (today, "subscription", 500, 0, 0, 0),
    ]
    assert summary_by_day(sql_run) == ledger_by_day(sql_run)


def test_folding_goes_a_chunk_at_a_time_and_stops_at_its_deadline(
    pool, sql_run, monkeypatch, today
):
    for n in range(5):
        ledger.grant(pool, ledger.GrantRequest("fay", 10, "promotion", f"f{n}", at=at(5)))
    monkeypatch.setattr(summary, "CHUNK", 2)

    with connection(pool) as conn:
        assert summary.catch_up(conn, deadline=0.0) == 0  # past: no chunk started
        assert summary.catch_up(conn) == 5
    assert summary_by_day(sql_run) == [(today, "promotion", 50, 0, 0, 0)]


def test_a_page_folds_a_tail_grown_past_its_limit(make_app, pool, sql_run, monkeypatch):
    from credits.console import operators

    console = make_app(CREDITS_CONSOLE_KEY=KEY)
    operators.add(console.extensions["credits"]["pool"], "vic", "viewer", PASSWORD)
    client = console.test_client()
    assert sign_in(client, "vic").status_code == 303
    ledger.grant(pool, ledger.GrantRequest("gil", 10, "promotion", "g1"))
    ledger.grant(pool, ledger.GrantRequest("gil", 10, "promotion", "g2"))

    monkeypatch.setattr(summary, "TAIL_LIMIT", 2)
    assert client.get("/admin/finance").status_code == 200
    assert sql_run("SELECT through_id FROM credits.ledger_summary") == [{"through_id": 0}]
    monkeypatch.setattr(summary, "TAIL_LIMIT", 1)
    assert client.get("/admin/finance").status_code == 200
    assert sql_run("SELECT through_id FROM credits.ledger_summary") == [{"through_id": 2}]


def test_a_fold_of_no_entries_or_a_bad_count_is_refused(sql_run):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="max_entries"):
        sql_run("SELECT credits.summarise_ledger(0)")
    assert sql_run("SELECT through_id FROM credits.ledger_summary") == [{"through_id": 0}]


def test_users_are_found_by_a_literal_prefix_first_ones_first(pool, subscribe, add_plan, sql_run):
    add_plan("pro", 100, 30)
    for user in ("a_b", "axb", "a%c", "a_a"):
        ledger.grant(pool, ledger.GrantRequest(user, 5, "promotion", f"r-{user}"))
    subscribe("s1", "a_0", "pro", "2026-01-10")
    subscribe("s2", "a_0", "pro", "2026-02-10")
    subscribe("s3", "a_b", "pro", "2026-02-10")

    assert reports.find_users(pool, "a_") == [
        {"user_id": "a_0", "balance": None},
        {"user_id": "a_a", "balance": 5},
        {"user_id": "a_b", "balance": 5},
    ]
    assert [u["user_id"] for u in reports.find_users(pool, "a", limit=2)] == ["a%c", "a_0"]
    assert reports.find_users(pool, "a%") == [{"user_id": "a%c", "balance": 5}]


def test_emptying_the_ledger_empties_its_summary(pool, sql_run, a_month_of_everything, today):
    catch_up(pool)
    sql_run("TRUNCATE credits.transactions, credits.batches, credits.balances RESTART IDENTITY")

    ledger.grant(pool, ledger.GrantRequest("hal", 7, "promotion", "h1"))

    assert [(m["month"], m["granted"]) for m in reports.ledger_by_month(pool)] == [
        (today.replace(day=1), 7)
    ]
    catch_up(pool)
    assert summary_by_day(sql_run) == [(today, "promotion", 7, 0, 0, 0)]
