-- call_grant_registration_bonus: the sign-up bonus, once per user (docs/API.md).
SELECT credits.grant_registration_bonus_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s)
       AS answer
