-- set_run_limits: for the rest of this transaction, compile no plan to machine code, and wait
-- at most %(lock_timeout)s (e.g. '1500ms'; NULL: as long as the session would) for any lock.
-- JIT cost every expire chunk about 20 ms of compiling that its plans never won back
-- (docs/PERFORMANCE.md). A run with a time budget sets what is left of it as the lock wait,
-- so a row another session holds makes its chunk give up (and the next call do it again),
-- not overrun the budget.
SELECT set_config('jit', 'off', true),
       set_config('lock_timeout', coalesce(%(lock_timeout)s, current_setting('lock_timeout')),
                  true)
