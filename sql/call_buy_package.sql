-- call_buy_package: grant a credit pack for a purchase (credits.buy_package_at, docs/API.md).
SELECT credits.buy_package_at(coalesce(%(at)s::timestamptz, now()), %(user_id)s,
                              %(package_id)s, %(reference_id)s) AS answer
