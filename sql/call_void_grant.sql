-- call_void_grant: take back what remains of a one-off grant (credits.void_grant_at).
SELECT credits.void_grant_at(coalesce(%(at)s::timestamptz, now()), %(reference_id)s,
                             %(metadata)s) AS answer
