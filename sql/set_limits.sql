-- set_limits: the balance cap a pack may not take a user above (NULL: no cap).
INSERT INTO credits.limits (singleton, max_balance)
VALUES (true, %(max_balance)s)
ON CONFLICT (singleton) DO UPDATE SET max_balance = excluded.max_balance
