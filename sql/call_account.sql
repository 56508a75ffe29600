-- call_account: one user's balance, spendable credits, next expiry and next grant.
SELECT credits.account_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s,
                          %(eligible_statuses)s) AS answer
