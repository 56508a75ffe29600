-- call_grant_credits: grant a one-off batch (credits.grant_credits_at, docs/API.md).
SELECT credits.grant_credits_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s, %(amount)s::bigint,
                                %(source)s, %(reference_id)s, %(validity_days)s::bigint,
                                %(expires_at)s::timestamptz, %(metadata)s) AS answer
