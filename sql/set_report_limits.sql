-- set_report_limits: for the rest of this transaction, compile no plan to machine code. A
-- report over the ledger's daily summary is planned before the tail's length is known (the
-- summary's bound is read by the statement itself), so its estimate is a large share of the
-- ledger and JIT compiled for 0.3-0.7 s what then ran in milliseconds (docs/PERFORMANCE.md).
SELECT set_config('jit', 'off', true)
