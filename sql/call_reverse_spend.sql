-- call_reverse_spend: give a spend's credits back (credits.reverse_spend_at, docs/API.md).
SELECT credits.reverse_spend_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s,
                                %(reference_id)s, %(metadata)s) AS answer
