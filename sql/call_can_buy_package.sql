-- call_can_buy_package: would this pack's purchase be refused over the cap? (docs/API.md)
SELECT credits.can_buy_package(%(user_id)s, %(package_id)s) AS answer
