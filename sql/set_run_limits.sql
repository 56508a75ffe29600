-- set_run_limits: for the rest of this transaction, plan every statement with its own values,
-- compile no plan to machine code, and wait at most %(lock_timeout)s (e.g. '1500ms'; NULL: as
-- long as the session would) for any lock.
-- A chunk's plan depends on its key bounds: a generic plan, which psycopg's prepared
-- statements let PostgreSQL choose once the tables have grown, cannot use them and reads the
-- whole of credits.subscriptions for every chunk; the first grant of 10,000,000 subscriptions
-- grew quadratic with it (docs/PERFORMANCE.md).
-- JIT cost every expire chunk about 20 ms of compiling that its plans never won back
-- (docs/PERFORMANCE.md). A run with a time budget sets what is left of it as the lock wait,
-- so a row another session holds makes its chunk give up (and the next call do it again),
-- not overrun the budget.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('jit', 'off', true),
       set_config('lock_timeout', coalesce(%(lock_timeout)s, current_setting('lock_timeout')),
                  true)
