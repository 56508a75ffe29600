-- find_user_spend: one user's spend under a reference, as the console shows it before reversing:
-- the credits it drew, when, for which service, and whether it was reversed already.
SELECT coalesce(-sum(t.amount) FILTER (WHERE t.type = 'consume'), 0) AS spent,
       min(t.created_at) FILTER (WHERE t.type = 'consume') AS spent_at,
       max(t.service) AS service,
       coalesce(bool_or(t.type = 'reverse'), false) AS reversed
  FROM credits.transactions t
 WHERE t.user_id = %(user_id)s
   AND t.reference_id = %(reference_id)s
   AND t.type IN ('consume', 'reverse')
