"""The outbox against the ledger: every committed change has its event, and no event is
without its change (docs/EVENTS.md). Read by the model and load runs."""

# Each query answers the rows of one side that the other lacks, or that it holds twice.
CHECKS = {
    "granted": """
        SELECT 'grant' AS kind, t.batch_id::text AS key, count(e.id) AS events
          FROM credits.transactions t
          LEFT JOIN credits.events e ON e.type = 'credits.granted'
                                    AND (e.payload->>'batch_id')::bigint = t.batch_id
         WHERE t.type = 'grant'
         GROUP BY t.batch_id HAVING count(e.id) <> 1
        UNION ALL
        SELECT 'granted event', e.payload->>'batch_id', 0
          FROM credits.events e
         WHERE e.type = 'credits.granted'
           AND NOT EXISTS (SELECT FROM credits.transactions t WHERE t.type = 'grant'
                              AND t.batch_id = (e.payload->>'batch_id')::bigint)
    """,
    "voided": """
        SELECT 'void', t.batch_id::text, count(e.id)
          FROM credits.transactions t
          LEFT JOIN credits.events e ON e.type = 'credits.voided'
                                    AND (e.payload->>'batch_id')::bigint = t.batch_id
         WHERE t.type = 'void'
         GROUP BY t.batch_id HAVING count(e.id) <> 1
        UNION ALL
        SELECT 'voided event', e.payload->>'batch_id', 0
          FROM credits.events e
         WHERE e.type = 'credits.voided'
           AND NOT EXISTS (SELECT FROM credits.transactions t WHERE t.type = 'void'
                              AND t.batch_id = (e.payload->>'batch_id')::bigint)
    """,
    "spent and reversed": """
        WITH ledger AS (
            SELECT CASE type WHEN 'consume' THEN 'credits.spent' ELSE 'credits.reversed' END
                       AS event, user_id, reference_id,
                   sum(abs(amount)) FILTER (WHERE type IN ('consume', 'reverse')) AS amount
              FROM credits.transactions
             WHERE type IN ('consume', 'reverse', 'lapse')
             GROUP BY 1, 2, 3
        ),
        outbox AS (
            SELECT type AS event, user_id, payload->>'reference_id' AS reference_id,
                   sum((payload->>'amount')::bigint) AS amount, count(*) AS n
              FROM credits.events
             WHERE type IN ('credits.spent', 'credits.reversed')
             GROUP BY 1, 2, 3
        )
        SELECT coalesce(l.event, o.event), coalesce(l.reference_id, o.reference_id),
               coalesce(o.n, 0)
          FROM ledger l
          FULL JOIN outbox o USING (event, user_id, reference_id)
         WHERE o.n IS DISTINCT FROM 1 OR l.amount IS DISTINCT FROM o.amount
    """,
    "expired": """
        WITH outbox AS (
            SELECT (b->>'batch_id')::bigint AS batch_id, (b->>'amount')::bigint AS amount
              FROM credits.events e, jsonb_array_elements(e.payload->'batches') AS b
             WHERE e.type = 'credits.expired'
        )
        SELECT 'expire', coalesce(t.batch_id, o.batch_id)::text, count(o.batch_id)
          FROM (SELECT batch_id, -amount AS amount FROM credits.transactions
                 WHERE type = 'expire') AS t
          FULL JOIN outbox o USING (batch_id)
         GROUP BY coalesce(t.batch_id, o.batch_id), t.amount
        HAVING count(o.batch_id) <> 1 OR count(t.batch_id) <> 1 OR t.amount <> min(o.amount)
    """,
}


def event_mismatches(sql):
    """(check, kind, key, events found) for each change without exactly one event, and each
    event without its change; empty when the outbox and the ledger agree. sql(statement)
    answers rows as dicts."""
    found = []
    for name, statement in CHECKS.items():
        found += [(name, *row.values()) for row in sql(statement)]
    return found
