-- =============================================================================================
-- The events outbox (docs/EVENTS.md): triggers write each change's events in the change's own
-- transaction, so a committed change has its events and a rolled-back one none, whichever
-- function, job or console action made it. Ledger events come from the ledger itself, one
-- INSERT ... SELECT per statement (a grant chunk's 25,000 entries are one statement); balance
-- events from the balances; a failed run's from job_runs. Each statement that writes events
-- notifies credits_events once, delivered to listeners when its transaction commits.
-- The trigger functions run as the schema's owner, so a writer needs no right on the outbox.
-- =============================================================================================

-- The events of one statement's ledger entries: a grant or a void is one event; a spend's
-- entries (one per batch drawn), one event; an expire statement's, one event per user; a
-- reversal's entries, written one by one, are gathered into its single event.
CREATE OR REPLACE FUNCTION credits.record_ledger_events()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last bigint;
    v_reversal record;
BEGIN
    WITH grouped AS (
        SELECT CASE n.type WHEN 'consume' THEN 'credits.spent' ELSE 'credits.expired' END AS type,
               n.user_id,
               CASE WHEN n.type = 'consume' THEN n.reference_id END AS reference_id,
               min(n.id) AS first_id,
               -sum(n.amount) AS amount,
               (array_agg(n.balance_after ORDER BY n.id DESC))[1] AS balance,
               jsonb_agg(jsonb_build_object('batch_id', n.batch_id, 'amount', -n.amount)
                         ORDER BY n.id) AS batches,
               min(n.service) AS service,
               (array_agg(n.metadata))[1] AS metadata,
               min(n.job_id::text) AS job_id
          FROM new_entries n
         WHERE n.type IN ('consume', 'expire')
         GROUP BY 1, 2, 3
    ),
    made AS (
        -- A grant run's entries need no probe of their batches (credits.run_grant_source); any
        -- other grant's source is its batch's, one probe by primary key.
        SELECT n.id AS first_id, 'credits.granted' AS type, n.user_id,
               jsonb_build_object('user_id', n.user_id, 'reference_id', n.reference_id,
                                  'amount', n.amount, 'balance', n.balance_after,
                                  'batch_id', n.batch_id,
                                  'source', coalesce(credits.run_grant_source(n.job_id),
                                                     (SELECT b.source FROM credits.batches b
                                                       WHERE b.id = n.batch_id)),
                                  'job_id', n.job_id, 'metadata', n.metadata) AS payload
          FROM new_entries n
         WHERE n.type = 'grant'
        UNION ALL
        SELECT n.id, 'credits.voided', n.user_id,
               jsonb_build_object('user_id', n.user_id, 'reference_id', n.reference_id,
                                  'amount', -n.amount, 'balance', n.balance_after,
                                  'batch_id', n.batch_id)
          FROM new_entries n
         WHERE n.type = 'void'
        UNION ALL
        SELECT g.first_id, g.type, g.user_id,
               CASE g.type
               WHEN 'credits.spent' THEN
                   jsonb_build_object('user_id', g.user_id, 'reference_id', g.reference_id,
                                      'amount', g.amount, 'balance', g.balance,
                                      'service', g.service, 'metadata', g.metadata,
                                      'batches', g.batches)
               ELSE
                   jsonb_build_object('user_id', g.user_id, 'amount', g.amount,
                                      'balance', g.balance, 'job_id', g.job_id,
                                      'batches', g.batches)
               END
          FROM grouped g
    ),
    inserted AS (
        INSERT INTO credits.events (type, user_id, payload)
        SELECT m.type, m.user_id, m.payload FROM made m ORDER BY m.first_id
        RETURNING id
    )
    SELECT max(i.id) INTO v_last FROM inserted i;

    -- A reversal writes its entries one statement each: the first makes its event, the others
    -- add to it (still pending: it commits with them).
    FOR v_reversal IN
        SELECT n.user_id, n.reference_id,
               coalesce(sum(n.amount) FILTER (WHERE n.type = 'reverse'), 0) AS amount,
               coalesce(-sum(n.amount) FILTER (WHERE n.type = 'lapse'), 0) AS lapsed,
               (array_agg(n.balance_after ORDER BY n.id DESC))[1] AS balance,
               jsonb_agg(jsonb_build_object('batch_id', n.batch_id, 'amount', n.amount,
                                            'type', n.type) ORDER BY n.id) AS batches
          FROM new_entries n
         WHERE n.type IN ('reverse', 'lapse')
         GROUP BY n.user_id, n.reference_id
    LOOP
        -- A spend is reversed once, in one transaction: a pending event of the same user
        -- and reference is this reversal's.
        UPDATE credits.events e
           SET payload = e.payload || jsonb_build_object(
                   'amount', (e.payload->>'amount')::bigint + v_reversal.amount,
                   'lapsed', (e.payload->>'lapsed')::bigint + v_reversal.lapsed,
                   'balance', v_reversal.balance,
                   'batches', (e.payload->'batches') || v_reversal.batches)
         WHERE coalesce(e.user_id, '') = v_reversal.user_id
           AND e.delivered_at IS NULL AND e.given_up_at IS NULL
           AND e.type = 'credits.reversed'
           AND e.payload->>'reference_id' = v_reversal.reference_id;
        IF NOT FOUND THEN
            INSERT INTO credits.events (type, user_id, payload)
            VALUES ('credits.reversed', v_reversal.user_id,
                    jsonb_build_object('user_id', v_reversal.user_id,
                                       'reference_id', v_reversal.reference_id,
                                       'amount', v_reversal.amount, 'lapsed', v_reversal.lapsed,
                                       'balance', v_reversal.balance,
                                       'batches', v_reversal.batches))
            RETURNING id INTO v_last;
        END IF;
    END LOOP;

    IF v_last IS NOT NULL THEN
        PERFORM pg_notify('credits_events', v_last::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER transactions_events
    AFTER INSERT ON credits.transactions
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION credits.record_ledger_events();

-- A balance that falls under [notifications] low_balance is low until it is back at or above
-- it: credits.balance_low once when it falls, credits.balance_recovered once when it is back.
-- Only changes of a balance count: a balance row is made at 0 (or at a first grant) and
-- reports when it next moves.
CREATE OR REPLACE FUNCTION credits.record_balance_events()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_low bigint;
    v_last bigint;
BEGIN
    SELECT n.low_balance INTO v_low FROM credits.notifications n;
    IF v_low IS NULL THEN
        RETURN NULL;
    END IF;
    WITH went_low AS (
        INSERT INTO credits.low_balances (user_id)
        SELECT n.user_id FROM new_balances n WHERE n.balance < v_low ORDER BY n.user_id
        ON CONFLICT (user_id) DO NOTHING
        RETURNING user_id
    ),
    recovered AS (
        DELETE FROM credits.low_balances l
         USING new_balances n
         WHERE l.user_id = n.user_id AND n.balance >= v_low
        RETURNING l.user_id
    ),
    inserted AS (
        INSERT INTO credits.events (type, user_id, payload)
        SELECT c.type, n.user_id,
               jsonb_build_object('user_id', n.user_id, 'balance', n.balance,
                                  'low_balance', v_low)
          FROM (SELECT 'credits.balance_low' AS type, user_id FROM went_low
                UNION ALL
                SELECT 'credits.balance_recovered', user_id FROM recovered) AS c
          JOIN new_balances n ON n.user_id = c.user_id
         ORDER BY n.user_id
        RETURNING id
    )
    SELECT max(i.id) INTO v_last FROM inserted i;
    IF v_last IS NOT NULL THEN
        PERFORM pg_notify('credits_events', v_last::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER balances_events
    AFTER UPDATE ON credits.balances
    REFERENCING NEW TABLE AS new_balances
    FOR EACH STATEMENT EXECUTE FUNCTION credits.record_balance_events();

-- A run marked failed or abandoned: credits.job_failed, written with the mark. Not for a
-- delivery run: its event would go to the very receiver that refused, one more each call.
CREATE OR REPLACE FUNCTION credits.record_job_failed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO credits.events (type, user_id, payload)
    VALUES ('credits.job_failed', NULL,
            jsonb_build_object('job_id', NEW.id, 'job', NEW.job, 'status', NEW.status,
                               'run_date', NEW.run_date, 'error', NEW.error,
                               'results', NEW.results))
    RETURNING id INTO v_id;
    PERFORM pg_notify('credits_events', v_id::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER job_runs_failed_event
    AFTER UPDATE OF status ON credits.job_runs
    FOR EACH ROW
    WHEN (NEW.status IN ('failed', 'abandoned') AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.job <> 'deliver')
    EXECUTE FUNCTION credits.record_job_failed();

-- The outbox read by the host: up to max_rows events after the event id after_id (0: from
-- the first kept), oldest first. Page on with the last id read.
CREATE OR REPLACE FUNCTION credits.events_after(after_id bigint, max_rows integer DEFAULT 100)
RETURNS TABLE (id bigint, type text, user_id text, payload jsonb, created_at timestamptz,
               delivered_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF after_id IS NULL OR after_id < 0 THEN
        RAISE EXCEPTION 'after_id must be an event id or 0, got %', coalesce(after_id::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'max_rows must be from 1 to 1000, got %', coalesce(max_rows::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT e.id, e.type, e.user_id, e.payload, e.created_at, e.delivered_at
          FROM credits.events e
         WHERE e.id > after_id
         ORDER BY e.id
         LIMIT max_rows;
END
$$;

-- Delivery runs kept in credits.job_runs only while they tell something: the run p_run when it
-- attempted no event (a call every few minutes keeps a row only when it had work), and the
-- delivery runs started more than p_days ago (the events' retention), a bounded number a call.
-- Only delivery runs: the service's role may delete no other run (sql/roles.sql).
CREATE OR REPLACE FUNCTION credits.prune_delivery_runs(p_run uuid, p_days integer,
                                                       p_limit integer)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH pruned AS (
        DELETE FROM credits.job_runs r
         WHERE r.job = 'deliver'
           AND (r.id = p_run
                OR r.id = ANY (ARRAY(SELECT o.id FROM credits.job_runs o
                                      WHERE o.job = 'deliver'
                                        AND o.started_at < now() - make_interval(days => p_days)
                                      ORDER BY o.started_at
                                      LIMIT p_limit)))
        RETURNING 1
    )
    SELECT count(*)::integer FROM pruned
$$;

-- Nobody may call these unless granted (sql/roles.sql): PUBLIC may run any function by default.
-- The triggers need no grant: a trigger's function is checked when the trigger is made.
REVOKE ALL ON FUNCTION
    credits.record_ledger_events(),
    credits.record_balance_events(),
    credits.record_job_failed(),
    credits.events_after(bigint, integer),
    credits.prune_delivery_runs(uuid, integer, integer)
FROM PUBLIC;
