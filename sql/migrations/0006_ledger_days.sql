-- 0006_ledger_days: the console's pages read the ledger's sums per day from a summary, not by
-- adding up the whole ledger on every request (docs/PERFORMANCE.md, The console at scale),
-- and find users by the start of their id through an index.

-- The ledger's movements added up per UTC day (of created_at) and grant source: every entry
-- with an id up to ledger_summary.through_id, no other. Entries after it (the tail) are read
-- live from the ledger, by id; credits.summarise_ledger() folds them in. Spent is net of
-- reversals; expired counts lapses; source is the batch's for a grant, '' for the rest.
CREATE TABLE IF NOT EXISTS credits.ledger_days (
    day     date NOT NULL,
    source  text NOT NULL,
    granted bigint NOT NULL,
    spent   bigint NOT NULL,
    expired bigint NOT NULL,
    voided  bigint NOT NULL,
    PRIMARY KEY (day, source)
);

-- How far the summary goes. through_id: the last entry added up in ledger_days. safe_id: an
-- id no uncommitted entry is below (credits.mark_ledger_summary), so the summary never goes
-- past an entry still to commit with a smaller id.
CREATE TABLE IF NOT EXISTS credits.ledger_summary (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    through_id bigint NOT NULL DEFAULT 0 CHECK (through_id >= 0),
    safe_id    bigint NOT NULL DEFAULT 0 CHECK (safe_id >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO credits.ledger_summary DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING;

-- The console's search by the start of a user id: a prefix is a range in byte order ("C"),
-- whatever the database's collation. Subscriptions as 0001 has them: only if a table, only ids
-- an index entry can hold.
CREATE INDEX IF NOT EXISTS balances_user_id_prefix_idx
    ON credits.balances ((user_id COLLATE "C"));
DO $$
BEGIN
    IF to_regclass('credits.subscriptions_user_id_prefix_idx') IS NULL
       AND (SELECT relkind FROM pg_class WHERE oid = 'credits.subscriptions'::regclass) = 'r' THEN
        CREATE INDEX subscriptions_user_id_prefix_idx
            ON credits.subscriptions ((user_id COLLATE "C"))
            WHERE octet_length(user_id) <= 800;
    END IF;
END
$$;

INSERT INTO credits.schema_migrations (version, name) VALUES (6, 'ledger_days')
ON CONFLICT (version) DO NOTHING;
