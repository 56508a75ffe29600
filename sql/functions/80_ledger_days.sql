-- The ledger's daily summary (credits.ledger_days, migration 0006), brought up to date by the
-- jobs after each run and by the console when its tail grows long: first mark how far the
-- ledger is committed, then fold the entries up to there into their days, a chunk at a time.

-- Record in ledger_summary.safe_id the ledger's last id, once every transaction writing to the
-- ledger has ended: ids are taken in order but committed in any order, so only past such a
-- moment is every smaller id final. The SHARE lock waits for the writers and holds new ones
-- back only until the caller commits, at once: run it alone in its own transaction. Writers
-- wait at most lock_timeout for it; past that it fails (lock_not_available) and changes nothing.
CREATE OR REPLACE FUNCTION credits.mark_ledger_summary()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '100ms'
AS $$
DECLARE
    v_safe bigint;
BEGIN
    LOCK TABLE credits.transactions IN SHARE MODE;
    SELECT coalesce(max(t.id), 0) INTO v_safe FROM credits.transactions t;
    UPDATE credits.ledger_summary SET safe_id = greatest(safe_id, v_safe);
    RETURN v_safe;
END
$$;

-- Fold the ledger's entries after through_id, up to safe_id and at most max_entries of them,
-- into ledger_days, adding to the days they fall on (a back-dated entry lands on its own day,
-- however old). Answers how many ids it went past; 0: nothing to fold. One run at a time.
CREATE OR REPLACE FUNCTION credits.summarise_ledger(max_entries integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_from bigint;
    v_upto bigint;
BEGIN
    PERFORM credits.checked_count(max_entries, 'max_entries');
    SELECT s.through_id, least(s.safe_id, s.through_id + max_entries)
      INTO v_from, v_upto
      FROM credits.ledger_summary s
       FOR UPDATE;
    IF v_upto <= v_from THEN
        RETURN 0;
    END IF;
    INSERT INTO credits.ledger_days AS d (day, source, granted, spent, expired, voided)
    SELECT f.day, f.source, f.granted, f.spent, f.expired, f.voided
      FROM credits.ledger_flows(v_from, v_upto) f
        ON CONFLICT (day, source) DO UPDATE
       SET granted = d.granted + excluded.granted,
           spent = d.spent + excluded.spent,
           expired = d.expired + excluded.expired,
           voided = d.voided + excluded.voided;
    UPDATE credits.ledger_summary SET through_id = v_upto, updated_at = now();
    RETURN v_upto - v_from;
END
$$;

-- The entries with ids in (after_id, upto_id] added up per UTC day and grant source: the one
-- rule of what counts as granted, spent, expired and voided, for the summary and the tail.
-- No SET clause, so a caller's query takes it in (inlined) and plans it with its own bounds.
CREATE OR REPLACE FUNCTION credits.ledger_flows(after_id bigint, upto_id bigint)
RETURNS TABLE (day date, source text, granted bigint, spent bigint, expired bigint,
               voided bigint)
LANGUAGE sql STABLE
AS $$
    SELECT (t.created_at AT TIME ZONE 'UTC')::date,
           CASE WHEN t.type = 'grant'
                THEN coalesce(credits.run_grant_source(t.job_id),
                              (SELECT b.source FROM credits.batches b WHERE b.id = t.batch_id))
                ELSE '' END,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'grant'), 0),
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('consume', 'reverse')), 0),
           coalesce(-sum(t.amount) FILTER (WHERE t.type IN ('expire', 'lapse')), 0),
           coalesce(-sum(t.amount) FILTER (WHERE t.type = 'void'), 0)
      FROM credits.transactions t
     WHERE t.id > after_id AND t.id <= upto_id
     GROUP BY 1, 2
$$;

-- A ledger emptied (TRUNCATE, as tests and a fresh start do, its ids perhaps restarted) empties
-- its summary in the same transaction: the summary never holds entries the ledger has not.
CREATE OR REPLACE FUNCTION credits.reset_ledger_summary()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM credits.ledger_days;
    UPDATE credits.ledger_summary SET through_id = 0, safe_id = 0, updated_at = now();
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER transactions_truncate_resets_summary
    AFTER TRUNCATE ON credits.transactions
    FOR EACH STATEMENT EXECUTE FUNCTION credits.reset_ledger_summary();

-- Nobody may call these unless granted (sql/roles.sql): PUBLIC may run any function by default.
REVOKE ALL ON FUNCTION
    credits.mark_ledger_summary(),
    credits.summarise_ledger(integer),
    credits.reset_ledger_summary()
FROM PUBLIC;
