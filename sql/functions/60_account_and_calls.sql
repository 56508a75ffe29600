-- Reading an account and its statement, the functions apps call at the database's clock, and
-- who may call what.

-- One user's account at `at`: balance, spendable now, the next batch to expire and the next
-- subscription grant (the grant job's due-day rule, credits.due_day, for this month and the
-- next two, among subscriptions in eligible_statuses). Reads one snapshot; locks nothing.
CREATE OR REPLACE FUNCTION credits.account_at(
    at timestamptz, user_id text, eligible_statuses text[] DEFAULT '{active}'
)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_today date := (at AT TIME ZONE 'UTC')::date;
    v_account jsonb;
BEGIN
    PERFORM credits.checked_at(at), credits.checked_text(user_id, 'user_id');
    IF eligible_statuses IS NULL THEN
        RAISE EXCEPTION 'eligible_statuses must not be null' USING ERRCODE = '22004';
    END IF;
    WITH mine AS (
        SELECT b.remaining, b.expires_at
          FROM credits.batches b
         WHERE b.user_id = account_at.user_id AND b.status = 'active'
    ),
    next_expiry AS (
        SELECT m.expires_at, sum(m.remaining) AS amount
          FROM mine m
         WHERE m.expires_at > at
         GROUP BY m.expires_at
         ORDER BY m.expires_at
         LIMIT 1
    ),
    due AS (
        SELECT credits.due_day(s.started_at, month.period_start) AS due_day, s.started_at,
               s.ends_at, p.monthly_credits,
               credits.subscription_reference(s.id, month.period_start) AS reference_id
          FROM credits.subscriptions s
          JOIN credits.plans p ON p.plan_id = s.plan_id
         CROSS JOIN LATERAL (
                SELECT (date_trunc('month', v_today) + make_interval(months => n))::date
                       AS period_start
                  FROM generate_series(0, 2) n) month
         WHERE s.user_id = account_at.user_id AND s.status = ANY (eligible_statuses)
           AND octet_length(s.user_id) <= 800  -- max_text_length() characters, 4 bytes each
    ),
    next_grant AS (
        SELECT d.due_day, sum(d.monthly_credits) AS amount
          FROM due d
         WHERE d.due_day >= v_today
           AND (d.started_at AT TIME ZONE 'UTC')::date <= d.due_day
           AND (d.ends_at IS NULL OR d.ends_at > d.due_day::timestamp AT TIME ZONE 'UTC')
           AND NOT EXISTS (SELECT 1 FROM credits.batches b
                            WHERE credits.reference_order(b.reference_id)
                                  = credits.reference_order(d.reference_id)
                              AND b.reference_id = d.reference_id)
         GROUP BY d.due_day
         ORDER BY d.due_day
         LIMIT 1
    )
    SELECT jsonb_build_object(
        'user_id', user_id,
        'balance', coalesce((SELECT b.balance FROM credits.balances b
                              WHERE b.user_id = account_at.user_id), 0),
        'spendable', (SELECT coalesce(sum(m.remaining), 0) FROM mine m
                       WHERE m.expires_at IS NULL OR m.expires_at > at),
        'next_expiry', (SELECT jsonb_build_object('amount', e.amount, 'expires_at', e.expires_at)
                          FROM next_expiry e),
        'next_grant', (SELECT jsonb_build_object('date', g.due_day, 'amount', g.amount)
                         FROM next_grant g))
      INTO v_account;
    RETURN v_account;
END
$$;

-- One user's ledger entries, newest first, at most `lim` (1 to 100) with entry ids below
-- `before` (the last entry_id of the previous page): keyset paging, no OFFSET.
CREATE OR REPLACE FUNCTION credits.statement(user_id text, lim integer DEFAULT 50, before bigint DEFAULT NULL)
RETURNS TABLE (
    entry_id      bigint,
    created_at    timestamptz,
    type          text,
    amount        integer,
    balance_after bigint,
    reference_id  text,
    service       text,
    metadata      jsonb,
    batch_id      bigint,
    source        text,
    expires_at    timestamptz
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM credits.checked_text(statement.user_id, 'user_id');
    IF lim IS NULL OR lim < 1 THEN
        RAISE EXCEPTION 'limit must be a whole number from 1 to 100, got %', coalesce(lim::text, 'null')
            USING ERRCODE = '22023';
    ELSIF lim > 100 THEN
        RAISE EXCEPTION 'limit must be at most 100, got %', lim USING ERRCODE = '22003';
    ELSIF before IS NOT NULL AND before < 1 THEN
        RAISE EXCEPTION 'before must be an entry id above 0, got %', before USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT t.id, t.created_at, t.type, t.amount, t.balance_after, t.reference_id, t.service,
               t.metadata, t.batch_id, b.source, b.expires_at
          FROM credits.transactions t
          JOIN credits.batches b ON b.id = t.batch_id
         WHERE t.user_id = statement.user_id
           AND (statement.before IS NULL OR t.id < statement.before)
         ORDER BY t.id DESC
         LIMIT lim;
END
$$;

-- What apps call: the functions above at the database's clock (now(), the transaction's start).
CREATE OR REPLACE FUNCTION credits.grant_credits(
    user_id text, amount bigint, source text, reference_id text,
    validity_days bigint DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.grant_credits_at(now(), $1, $2, $3, $4, $5, $6, $7) $$;

CREATE OR REPLACE FUNCTION credits.buy_package(user_id text, package_id text, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.buy_package_at(now(), $1, $2, $3) $$;

CREATE OR REPLACE FUNCTION credits.grant_registration_bonus(user_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.grant_registration_bonus_at(now(), $1) $$;

CREATE OR REPLACE FUNCTION credits.spend(
    user_id text, amount bigint, reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.spend_at(now(), $1, $2, NULL, NULL, $3, $4) $$;

CREATE OR REPLACE FUNCTION credits.spend_service(
    user_id text, service text, quantity bigint, reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
-- The service is checked here: spend_at reads a NULL service as a spend by amount.
AS $$ SELECT credits.spend_at(now(), $1, NULL, credits.checked_text($2, 'service'), $3, $4, $5) $$;

CREATE OR REPLACE FUNCTION credits.reverse_spend(user_id text, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.reverse_spend_at(now(), $1, $2, NULL::jsonb) $$;

CREATE OR REPLACE FUNCTION credits.reverse_spend(user_id text, reference_id text, metadata jsonb)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.reverse_spend_at(now(), $1, $2, $3) $$;

CREATE OR REPLACE FUNCTION credits.void_grant(reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.void_grant_at(now(), $1, NULL::jsonb) $$;

CREATE OR REPLACE FUNCTION credits.void_grant(reference_id text, metadata jsonb)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.void_grant_at(now(), $1, $2) $$;

CREATE OR REPLACE FUNCTION credits.account(user_id text, eligible_statuses text[] DEFAULT '{active}')
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.account_at(now(), $1, $2) $$;

-- Nobody may call these unless granted (sql/roles.sql): PUBLIC may run any function by default.
REVOKE ALL ON FUNCTION
    credits.checked_text(text, text),
    credits.checked_count(bigint, text),
    credits.checked_grant_reference(text),
    credits.checked_expiry(timestamptz, bigint, timestamptz),
    credits.checked_metadata(jsonb),
    credits.checked_at(timestamptz),
    credits.grant_batch(text, integer, text, text, timestamptz, jsonb, boolean, boolean),
    credits.grant_answer(credits.batches, bigint, boolean),
    credits.known_package(text),
    credits.reversal_answer(text, text, bigint, bigint, bigint, jsonb, boolean),
    credits.grant_credits_at(timestamptz, text, bigint, text, text, bigint, timestamptz, jsonb),
    credits.buy_package_at(timestamptz, text, text, text),
    credits.grant_registration_bonus_at(timestamptz, text),
    credits.spend_at(timestamptz, text, bigint, text, bigint, text, jsonb),
    credits.spend_replay(text, text, bigint, text, bigint),
    credits.reverse_spend_at(timestamptz, text, text),
    credits.reverse_spend_at(timestamptz, text, text, jsonb),
    credits.void_grant_at(timestamptz, text),
    credits.void_grant_at(timestamptz, text, jsonb),
    credits.account_at(timestamptz, text, text[]),
    credits.grant_credits(text, bigint, text, text, bigint, timestamptz, jsonb),
    credits.buy_package(text, text, text),
    credits.can_buy_package(text, text),
    credits.grant_registration_bonus(text),
    credits.spend(text, bigint, text, jsonb),
    credits.spend_service(text, text, bigint, text, jsonb),
    credits.reverse_spend(text, text),
    credits.reverse_spend(text, text, jsonb),
    credits.void_grant(text),
    credits.void_grant(text, jsonb),
    credits.account(text, text[]),
    credits.statement(text, integer, bigint)
FROM PUBLIC;
