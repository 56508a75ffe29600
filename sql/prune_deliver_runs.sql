-- prune_deliver_runs: delete this delivery run when it attempted no event (%(idle)s), and the
-- delivery runs past the events' retention (credits.prune_delivery_runs).
SELECT credits.prune_delivery_runs(CASE WHEN %(idle)s THEN %(job_id)s::uuid END,
                                   %(days)s, %(limit)s) AS pruned
