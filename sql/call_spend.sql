-- call_spend: spend by amount or by service, once per reference (credits.spend_at,
-- docs/API.md). The one spending statement: consume and spend both come here.
SELECT credits.spend_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s, %(amount)s::bigint,
                        %(service)s, %(quantity)s::bigint, %(reference_id)s, %(metadata)s) AS answer
