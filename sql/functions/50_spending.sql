-- Spending, reversing a spend and voiding a one-off grant (the rules of every writing
-- function: 40_grants.sql).

-- Spend credits of one user at `at`: amount, or a service's cost times quantity. Soonest-
-- expiring batch first, never-expiring last, never from a batch past its date; all or nothing
-- (CR001 when short); once per reference. A replay asks what the first call asked (the same
-- amount; or the same service and quantity, whatever the service costs now) and answers the
-- first spend; the same reference for another spend is refused (CR002).
CREATE OR REPLACE FUNCTION credits.spend_at(
    at timestamptz, user_id text, amount bigint, service text, quantity bigint,
    reference_id text, metadata jsonb DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- One plan serves every user: planning the spend statement anew for each call (a custom
-- plan) cost more than running it (docs/PERFORMANCE.md, Spending).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_amount bigint := amount;
    v_cost integer;
    v_balance bigint;
    v_earlier bigint;
    v_earlier_service text;
    v_earlier_quantity integer;
    v_available bigint := 0;
    v_spent_balance bigint;
    v_draws jsonb;
BEGIN
    PERFORM credits.checked_at(at),
            credits.checked_text(user_id, 'user_id'),
            credits.checked_grant_reference(reference_id),
            credits.checked_metadata(metadata),
            credits.checked_count(amount, 'amount')
      WHERE service IS NULL;
    IF service IS NOT NULL THEN
        SELECT s.cost INTO v_cost FROM credits.services s
         WHERE s.service = credits.checked_text(spend_at.service, 'service');
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown service %', quote_literal(service) USING ERRCODE = 'CR005';
        END IF;
        PERFORM credits.checked_at(at),
                credits.checked_text(user_id, 'user_id'),
                credits.checked_grant_reference(reference_id),
                credits.checked_metadata(metadata),
                credits.checked_count(v_cost * credits.checked_count(quantity, 'quantity')::bigint,
                                      'amount');
        v_amount := v_cost * quantity;
    END IF;

    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = spend_at.user_id FOR UPDATE;
    -- No balance row: the user held no credits when this call began, and the call holds no
    -- lock on them. It spends nothing (CR001 below): a batch of the user's first grant,
    -- committed meanwhile, could otherwise be drawn here and by a spend holding the new
    -- row's lock at once (tests/test_first_credits_race.py).
    IF FOUND THEN
        -- A statement of its own, so it sees a spend with this reference that committed while
        -- this call waited for the lock.
        SELECT -sum(t.amount), min(t.service), min(t.quantity)
          INTO v_earlier, v_earlier_service, v_earlier_quantity
          FROM credits.transactions t
         WHERE t.user_id = spend_at.user_id AND t.type = 'consume'
           AND t.reference_id = spend_at.reference_id;
        IF v_earlier IS NOT NULL THEN
            -- Entries written before quantity was kept have it NULL: their amount decides.
            IF v_earlier_service IS DISTINCT FROM service
               OR (CASE WHEN service IS NULL OR v_earlier_quantity IS NULL
                        THEN v_earlier <> v_amount
                        ELSE v_earlier_quantity <> quantity END) THEN
                RAISE EXCEPTION 'reference_id % already spent % credits of user %, not %',
                    quote_literal(reference_id), v_earlier,
                    quote_literal(user_id)
                        || coalesce(' on service ' || quote_literal(v_earlier_service), ''),
                    coalesce(quantity || ' x ' || quote_literal(service), v_amount::text)
                    USING ERRCODE = 'CR002',
                    DETAIL = json_build_object('reference_id', reference_id, 'spent', v_earlier,
                                               'asked', v_amount)::text;
            END IF;
            RETURN credits.spend_replay(user_id, reference_id, v_earlier, v_earlier_service,
                                        v_balance);
        END IF;

        -- One statement: draw the batches, write the ledger, lower the balance; or, when the
        -- spendable credits are short, nothing (available says how many there were).
        WITH spendable AS (
            SELECT b.id, b.remaining, b.expires_at,
                   sum(b.remaining) OVER (ORDER BY b.expires_at ASC NULLS LAST, b.id)
                       - b.remaining AS drawn_before,
                   sum(b.remaining) OVER () AS available
              FROM credits.batches b
             WHERE b.user_id = spend_at.user_id AND b.status = 'active'
               AND (b.expires_at IS NULL OR b.expires_at > at)
        ),
        draws AS (
            SELECT s.id, s.expires_at, s.drawn_before,
                   least(s.remaining, v_amount - s.drawn_before) AS drawn
              FROM spendable s
             WHERE s.drawn_before < v_amount AND s.available >= v_amount
        ),
        drawn AS (
            UPDATE credits.batches b
               SET remaining = b.remaining - d.drawn,
                   status = CASE WHEN b.remaining = d.drawn THEN 'consumed' ELSE 'active' END
              FROM draws d
             WHERE b.id = d.id
            RETURNING b.id, d.drawn, d.drawn_before, d.expires_at
        ),
        ledger AS (
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after, service,
                    quantity, metadata)
            SELECT spend_at.user_id, d.id, 'consume', -d.drawn, spend_at.reference_id,
                   v_balance - d.drawn_before - d.drawn, spend_at.service, spend_at.quantity,
                   spend_at.metadata
              FROM drawn d
             ORDER BY d.drawn_before
        ),
        lowered AS (
            UPDATE credits.balances b SET balance = b.balance - v_amount, updated_at = now()
             WHERE b.user_id = spend_at.user_id
               AND EXISTS (SELECT 1 FROM drawn)
            RETURNING b.balance
        )
        SELECT coalesce((SELECT max(s.available) FROM spendable s), 0) AS available,
               (SELECT l.balance FROM lowered l) AS balance,
               (SELECT jsonb_agg(jsonb_build_object('batch_id', d.id, 'amount', d.drawn,
                                                    'expires_at', d.expires_at)
                                 ORDER BY d.drawn_before)
                  FROM drawn d) AS draws
          INTO v_available, v_spent_balance, v_draws;
    END IF;
    IF v_spent_balance IS NULL THEN
        RAISE EXCEPTION 'user % has % spendable credits, % asked for',
            quote_literal(user_id), v_available, v_amount USING ERRCODE = 'CR001',
            DETAIL = json_build_object('user_id', user_id, 'spendable', v_available,
                                       'asked', v_amount)::text;
    END IF;
    RETURN jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'amount', v_amount,
        'service', service, 'balance', v_spent_balance, 'draws', v_draws,
        'replayed', false, 'reversed', false);
END
$$;

-- A replayed spend's answer: what it drew, and whether it was reversed since.
CREATE OR REPLACE FUNCTION credits.spend_replay(
    user_id text, reference_id text, amount bigint, service text, balance bigint
)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'amount', amount,
        'service', service, 'balance', balance,
        'draws', (SELECT jsonb_agg(jsonb_build_object('batch_id', t.batch_id, 'amount', -t.amount)
                                   ORDER BY t.id)
                    FROM credits.transactions t
                   WHERE t.user_id = spend_replay.user_id AND t.type = 'consume'
                     AND t.reference_id = spend_replay.reference_id),
        'replayed', true,
        'reversed', EXISTS (SELECT 1 FROM credits.transactions t
                             WHERE t.user_id = spend_replay.user_id AND t.type = 'reverse'
                               AND t.reference_id = spend_replay.reference_id))
$$;

-- Reverse a spend: its credits go back to the batches they came from. Credits drawn from a
-- batch that has since passed its date, expired or been voided do not come back to life:
-- each is written in the ledger as given back (reverse) and written off at once (lapse).
-- Once per spend: a replay answers the first reversal. Unknown spend: CR006, as for a user
-- with no balance row when the call locks it: no spend of theirs had committed then, and one
-- committed since is not locked by this call (a reversal racing the user's first credits).
-- metadata (a JSON object, or NULL) is written on each entry, e.g. who reversed it and why.
CREATE OR REPLACE FUNCTION credits.reverse_spend_at(
    at timestamptz, user_id text, reference_id text, metadata jsonb
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_balance bigint;
    v_draw record;
    v_returned bigint := 0;
    v_lapsed bigint := 0;
    v_draws jsonb := '[]';
BEGIN
    PERFORM credits.checked_at(at);
    PERFORM credits.checked_text(user_id, 'user_id');
    PERFORM credits.checked_text(reference_id, 'reference_id');
    PERFORM credits.checked_metadata(metadata);
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = reverse_spend_at.user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % has no spend with reference_id %',
            quote_literal(user_id), quote_literal(reference_id) USING ERRCODE = 'CR006';
    END IF;

    IF EXISTS (SELECT 1 FROM credits.transactions t
                WHERE t.user_id = reverse_spend_at.user_id AND t.type = 'reverse'
                  AND t.reference_id = reverse_spend_at.reference_id) THEN
        SELECT coalesce(sum(t.amount) FILTER (WHERE t.type = 'reverse'), 0),
               coalesce(-sum(t.amount) FILTER (WHERE t.type = 'lapse'), 0),
               jsonb_agg(jsonb_build_object('batch_id', t.batch_id, 'amount', t.amount,
                                            'type', t.type) ORDER BY t.id)
          INTO v_returned, v_lapsed, v_draws
          FROM credits.transactions t
         WHERE t.user_id = reverse_spend_at.user_id AND t.type IN ('reverse', 'lapse')
           AND t.reference_id = reverse_spend_at.reference_id;
        RETURN credits.reversal_answer(user_id, reference_id, v_returned - v_lapsed, v_lapsed,
                                       v_balance, v_draws, replayed => true);
    END IF;

    FOR v_draw IN
        SELECT t.batch_id, -t.amount AS amount,
               b.status IN ('active', 'consumed') AND (b.expires_at IS NULL OR b.expires_at > at)
                   AS live
          FROM credits.transactions t
          JOIN credits.batches b ON b.id = t.batch_id
         WHERE t.user_id = reverse_spend_at.user_id AND t.type = 'consume'
           AND t.reference_id = reverse_spend_at.reference_id
         ORDER BY t.batch_id
           FOR UPDATE OF b
    LOOP
        v_balance := v_balance + v_draw.amount;
        INSERT INTO credits.transactions
               (user_id, batch_id, type, amount, reference_id, balance_after, metadata)
        VALUES (reverse_spend_at.user_id, v_draw.batch_id, 'reverse', v_draw.amount,
                reverse_spend_at.reference_id, v_balance, reverse_spend_at.metadata);
        v_draws := v_draws || jsonb_build_object('batch_id', v_draw.batch_id,
                                                 'amount', v_draw.amount, 'type', 'reverse');
        IF v_draw.live THEN
            UPDATE credits.batches b SET remaining = b.remaining + v_draw.amount, status = 'active'
             WHERE b.id = v_draw.batch_id;
            v_returned := v_returned + v_draw.amount;
        ELSE
            v_balance := v_balance - v_draw.amount;
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after, metadata)
            VALUES (reverse_spend_at.user_id, v_draw.batch_id, 'lapse', -v_draw.amount,
                    reverse_spend_at.reference_id, v_balance, reverse_spend_at.metadata);
            v_draws := v_draws || jsonb_build_object('batch_id', v_draw.batch_id,
                                                     'amount', -v_draw.amount, 'type', 'lapse');
            v_lapsed := v_lapsed + v_draw.amount;
        END IF;
    END LOOP;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % has no spend with reference_id %',
            quote_literal(user_id), quote_literal(reference_id) USING ERRCODE = 'CR006';
    END IF;

    UPDATE credits.balances b SET balance = v_balance, updated_at = now()
     WHERE b.user_id = reverse_spend_at.user_id;
    RETURN credits.reversal_answer(user_id, reference_id, v_returned, v_lapsed, v_balance,
                                   v_draws, replayed => false);
END
$$;

CREATE OR REPLACE FUNCTION credits.reversal_answer(
    user_id text, reference_id text, returned bigint, lapsed bigint, balance bigint,
    entries jsonb, replayed boolean
)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'user_id', user_id, 'reference_id', reference_id, 'returned', returned,
        'lapsed', lapsed, 'balance', balance, 'entries', entries, 'replayed', replayed)
$$;

-- Void a one-off grant by the reference it was granted under (a pack: its purchase
-- reference): what remains of it is taken back, what was spent is reported, not clawed back.
-- Once: a replay answers the first void. Unknown reference: CR006; a subscription's grant: CR008.
-- An expired batch stays expired (nothing remains to take back). spent is what its spends
-- drew and kept: credits reversed since are not spent. metadata (a JSON object, or NULL) is
-- written on the void entry.
CREATE OR REPLACE FUNCTION credits.void_grant_at(
    at timestamptz, reference_id text, metadata jsonb
)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user_id text;
    v_balance bigint;
    v_batch credits.batches;
    v_voided bigint := 0;
    v_expired bigint;
    v_spent bigint;
    v_replayed boolean;
BEGIN
    PERFORM credits.checked_at(at);
    PERFORM credits.checked_text(reference_id, 'reference_id');
    PERFORM credits.checked_metadata(metadata);
    -- Whose grant it is, unlocked: a batch never changes user.
    SELECT b.user_id INTO v_user_id
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(void_grant_at.reference_id)
       AND b.reference_id = void_grant_at.reference_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no grant has reference_id %', quote_literal(reference_id)
            USING ERRCODE = 'CR006';
    END IF;
    SELECT b.balance INTO v_balance
      FROM credits.balances b WHERE b.user_id = v_user_id FOR UPDATE;
    SELECT * INTO v_batch
      FROM credits.batches b
     WHERE credits.reference_order(b.reference_id) = credits.reference_order(void_grant_at.reference_id)
       AND b.reference_id = void_grant_at.reference_id
       FOR UPDATE;
    IF v_batch.source = 'subscription' THEN
        RAISE EXCEPTION 'reference_id % is a subscription''s grant, not a one-off grant',
            quote_literal(reference_id) USING ERRCODE = 'CR008';
    END IF;

    v_replayed := v_batch.status = 'voided';
    IF v_batch.status = 'expired' THEN
        v_voided := 0;
    ELSIF v_replayed THEN
        SELECT coalesce(-sum(t.amount), 0) INTO v_voided
          FROM credits.transactions t WHERE t.batch_id = v_batch.id AND t.type = 'void';
    ELSE
        v_voided := v_batch.remaining;
        UPDATE credits.batches b SET remaining = 0, status = 'voided' WHERE b.id = v_batch.id;
        IF v_voided > 0 THEN
            UPDATE credits.balances b SET balance = b.balance - v_voided, updated_at = now()
             WHERE b.user_id = v_user_id
            RETURNING b.balance INTO v_balance;
            INSERT INTO credits.transactions
                   (user_id, batch_id, type, amount, reference_id, balance_after, metadata)
            VALUES (v_user_id, v_batch.id, 'void', -v_voided, v_batch.reference_id, v_balance,
                    void_grant_at.metadata);
        END IF;
    END IF;
    SELECT coalesce(-sum(t.amount) FILTER (WHERE t.type = 'expire'), 0),
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('consume', 'reverse')), 0)
      INTO v_expired, v_spent
      FROM credits.transactions t
     WHERE t.batch_id = v_batch.id AND t.type IN ('expire', 'consume', 'reverse');
    RETURN jsonb_build_object(
        'user_id', v_user_id, 'reference_id', v_batch.reference_id, 'batch_id', v_batch.id,
        'source', v_batch.source, 'amount', v_batch.amount, 'voided', v_voided,
        'expired', v_expired, 'spent', v_spent,
        'balance', v_balance, 'replayed', v_replayed);
END
$$;

-- The reversal and the void without metadata, as callers of earlier releases call them. Not
-- a DEFAULT on the argument above: the two would then match a call without it alike.
CREATE OR REPLACE FUNCTION credits.reverse_spend_at(at timestamptz, user_id text, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.reverse_spend_at($1, $2, $3, NULL::jsonb) $$;

CREATE OR REPLACE FUNCTION credits.void_grant_at(at timestamptz, reference_id text)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT credits.void_grant_at($1, $2, NULL::jsonb) $$;
