-- =============================================================================================
-- The app's interface: one-off grants, packs, the sign-up bonus, spending by amount or by
-- service, reversals, voids, the account and the statement, as functions any driver calls in
-- its own transaction. docs/API.md is their reference (arguments, answers, error codes).
--
-- Rules every writing function keeps:
-- * It locks the user's balance row first, then the user's batches, as the jobs do, so it
--   cannot deadlock with a grant, an expiry or another call.
-- * It is idempotent by the caller's reference: a replay answers the first call's result.
-- * A refusal raises a documented SQLSTATE and changes nothing (the raise undoes the call).
-- * Bad arguments raise 22004 (null), 22023 (empty, zero, negative, unknown choice),
--   22003 (above range) or 22001 (too long), naming the argument.
-- * Each runs as the schema's owner (SECURITY DEFINER) with a fixed search_path and every
--   name qualified, so a caller needs the right to call it and no right on any table.
-- Functions named *_at take the clock as their first argument (tests, back-dated tools); the
-- functions apps call pass now(). Only the service role may call the *_at ones (sql/roles.sql).
-- =============================================================================================

-- Give one user a batch under a reference, once: the balance row is locked first (created at
-- 0 on a user's first grant). A replay answers the batch already granted; the same reference
-- for another user, amount (when strict_replay) or source is refused (CR002), as is going
-- above max_balance when capped (CR003). A refusal names nothing of another user's. Arguments
-- are checked by the callers.
CREATE OR REPLACE FUNCTION credits.grant_batch(
    user_id text, amount integer, source text, reference_id text, expires_at timestamptz,
    metadata jsonb, capped boolean, strict_replay boolean
)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_balance bigint;
    v_cap bigint;
    v_batch credits.batches;
BEGIN
    INSERT INTO credits.balances AS b (user_id, balance) VALUES (grant_batch.user_id, 0)
    ON CONFLICT ON CONSTRAINT balances_pkey DO NOTHING;
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = grant_batch.user_id FOR UPDATE;

    SELECT * INTO v_batch
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(grant_batch.reference_id)
       AND b.reference_id = grant_batch.reference_id;
    IF FOUND THEN
        IF v_batch.user_id <> grant_batch.user_id THEN
            RAISE EXCEPTION 'reference_id % was already used for a grant to another user',
                quote_literal(grant_batch.reference_id) USING ERRCODE = 'CR002';
        ELSIF v_batch.source <> grant_batch.source
              OR (strict_replay AND v_batch.amount <> grant_batch.amount) THEN
            RAISE EXCEPTION 'reference_id % was already used for a grant of % % credits to user %',
                quote_literal(grant_batch.reference_id), v_batch.amount, v_batch.source,
                quote_literal(v_batch.user_id)
                USING ERRCODE = 'CR002',
                DETAIL = json_build_object('reference_id', grant_batch.reference_id,
                                           'granted', v_batch.amount, 'asked', grant_batch.amount)::text;
        END IF;
        RETURN credits.grant_answer(v_batch, v_balance, replayed => true);
    END IF;

    IF capped THEN
        SELECT l.max_balance INTO v_cap FROM credits.limits l;
        IF v_balance + amount > v_cap THEN
            RAISE EXCEPTION 'user % holds % credits; % more would pass the cap of %',
                quote_literal(grant_batch.user_id), v_balance, amount, v_cap
                USING ERRCODE = 'CR003',
                DETAIL = json_build_object('user_id', grant_batch.user_id, 'balance', v_balance,
                                           'asked', amount, 'max_balance', v_cap)::text;
        END IF;
    END IF;

    BEGIN
        INSERT INTO credits.batches AS b (user_id, source, reference_id, amount, remaining, expires_at)
        VALUES (grant_batch.user_id, grant_batch.source, grant_batch.reference_id,
                grant_batch.amount, grant_batch.amount, grant_batch.expires_at)
        RETURNING * INTO v_batch;
    EXCEPTION WHEN unique_violation THEN
        -- Another user's grant took this reference since the look above.
        RAISE EXCEPTION 'reference_id % was already used for a grant to another user',
            quote_literal(grant_batch.reference_id) USING ERRCODE = 'CR002';
    END;
    UPDATE credits.balances b SET balance = b.balance + grant_batch.amount, updated_at = now()
     WHERE b.user_id = grant_batch.user_id
    RETURNING b.balance INTO v_balance;
    INSERT INTO credits.transactions
           (user_id, batch_id, type, amount, reference_id, balance_after, metadata)
    VALUES (grant_batch.user_id, v_batch.id, 'grant', grant_batch.amount,
            grant_batch.reference_id, v_balance, grant_batch.metadata);
    RETURN credits.grant_answer(v_batch, v_balance, replayed => false);
END
$$;

CREATE OR REPLACE FUNCTION credits.grant_answer(batch credits.batches, balance bigint, replayed boolean)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', batch.user_id, 'reference_id', batch.reference_id, 'batch_id', batch.id,
        'source', batch.source, 'amount', batch.amount, 'expires_at', batch.expires_at,
        'balance', balance, 'replayed', replayed)
$$;

-- Grant a one-off batch: amount credits from a source, under the app's reference.
CREATE OR REPLACE FUNCTION credits.grant_credits_at(
    at timestamptz, user_id text, amount bigint, source text, reference_id text,
    validity_days bigint DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    metadata jsonb DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM credits.checked_at(at);
    IF source IS NULL OR source NOT IN ('purchase', 'bonus', 'registration', 'promotion', 'adjustment') THEN
        RAISE EXCEPTION 'source must be one of purchase, bonus, registration, promotion, adjustment, got %',
            coalesce(quote_literal(source), 'null') USING ERRCODE = '22023';
    END IF;
    RETURN credits.grant_batch(
        credits.checked_text(user_id, 'user_id'),
        credits.checked_count(amount, 'amount'),
        source,
        credits.checked_grant_reference(reference_id),
        credits.checked_expiry(at, validity_days, expires_at),
        credits.checked_metadata(metadata),
        capped => false, strict_replay => true);
END
$$;

-- Grant a credit pack bought under a purchase reference: one batch of its credits and bonus,
-- refused (CR003) when it would take the balance above [limits] max_balance. A replay is the
-- same user buying the same pack under that reference: it answers the first purchase (its
-- credits and bonus as they were), even if the pack changed since; any other grant under the
-- reference is refused (CR002).
CREATE OR REPLACE FUNCTION credits.buy_package_at(
    at timestamptz, user_id text, package_id text, reference_id text
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_package credits.packages;
    v_answer jsonb;
    v_bought jsonb;
BEGIN
    PERFORM credits.checked_at(at);
    PERFORM credits.checked_text(user_id, 'user_id');
    PERFORM credits.checked_grant_reference(reference_id);
    v_package := credits.known_package(package_id);
    v_bought := jsonb_build_object('package_id', v_package.package_id,
                                   'credits', v_package.credits, 'bonus', v_package.bonus);
    v_answer := credits.grant_batch(
        user_id, v_package.credits + v_package.bonus, 'purchase', reference_id,
        credits.checked_expiry(at, v_package.validity_days, NULL), v_bought,
        capped => true, strict_replay => false);
    IF (v_answer ->> 'replayed')::boolean THEN
        -- What the first purchase bought, as its ledger entry says.
        SELECT t.metadata INTO v_bought
          FROM credits.transactions t
         WHERE t.batch_id = (v_answer ->> 'batch_id')::bigint AND t.type = 'grant';
        IF v_bought ->> 'package_id' IS DISTINCT FROM v_package.package_id THEN
            RAISE EXCEPTION 'reference_id % was already used for another grant to user %',
                quote_literal(reference_id), quote_literal(user_id) USING ERRCODE = 'CR002';
        END IF;
    END IF;
    RETURN v_answer || jsonb_build_object('package_id', v_bought -> 'package_id',
                                          'credits', v_bought -> 'credits',
                                          'bonus', v_bought -> 'bonus');
END
$$;

CREATE OR REPLACE FUNCTION credits.known_package(package_id text)
RETURNS credits.packages
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_package credits.packages;
BEGIN
    SELECT * INTO v_package FROM credits.packages p
     WHERE p.package_id = credits.checked_text(known_package.package_id, 'package_id');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown package %', quote_literal(package_id) USING ERRCODE = 'CR004';
    END IF;
    RETURN v_package;
END
$$;

-- Ask before taking payment: would buying this pack be refused for being over the cap?
-- Reads only; the answer can change before the purchase, which buy_package checks again.
CREATE OR REPLACE FUNCTION credits.can_buy_package(user_id text, package_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_package credits.packages;
    v_balance bigint;
    v_cap bigint;
BEGIN
    PERFORM credits.checked_text(user_id, 'user_id');
    v_package := credits.known_package(package_id);
    SELECT coalesce((SELECT b.balance FROM credits.balances b
                      WHERE b.user_id = can_buy_package.user_id), 0) INTO v_balance;
    SELECT l.max_balance INTO v_cap FROM credits.limits l;
    RETURN jsonb_build_object(
        'allowed', v_cap IS NULL OR v_balance + v_package.credits + v_package.bonus <= v_cap,
        'user_id', user_id, 'package_id', v_package.package_id,
        'amount', v_package.credits + v_package.bonus, 'balance', v_balance,
        'max_balance', v_cap);
END
$$;

-- Grant the sign-up bonus of [registration], once per user whatever is replayed.
CREATE OR REPLACE FUNCTION credits.grant_registration_bonus_at(at timestamptz, user_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_registration credits.registration;
BEGIN
    PERFORM credits.checked_at(at);
    PERFORM credits.checked_text(user_id, 'user_id');
    SELECT * INTO v_registration FROM credits.registration;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sign-up bonus is configured ([registration] in the plans file)'
            USING ERRCODE = 'CR007';
    END IF;
    RETURN credits.grant_batch(
        user_id, v_registration.credits, 'registration', 'registration:' || user_id,
        credits.checked_expiry(at, v_registration.validity_days, NULL), NULL,
        capped => false, strict_replay => false);
END
$$;
