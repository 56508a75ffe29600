-- limit_lock_wait: for the rest of this transaction, wait at most %(timeout)s (e.g. '1500ms')
-- for any lock. A run with a time budget sets what is left of it, so a row another session
-- holds makes its chunk give up (and the next call do it again), not overrun the budget.
SELECT set_config('lock_timeout', %(timeout)s, true)
