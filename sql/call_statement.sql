-- call_statement: one page of a user's ledger entries, newest first (docs/API.md).
SELECT * FROM credits.statement(%(user_id)s, %(limit)s::integer, %(before)s::bigint)
