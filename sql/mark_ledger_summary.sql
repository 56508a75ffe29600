-- mark_ledger_summary: record how far the ledger is committed (credits.mark_ledger_summary), in
-- a transaction of its own, so its brief lock on the ledger ends at once.
SELECT credits.mark_ledger_summary() AS safe_id
