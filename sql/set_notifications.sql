-- set_notifications: the plans file's [notifications] (NULL: that event is not written).
INSERT INTO credits.notifications (singleton, expiring_days, low_balance)
VALUES (true, %(expiring_days)s, %(low_balance)s)
ON CONFLICT (singleton)
DO UPDATE SET expiring_days = excluded.expiring_days, low_balance = excluded.low_balance
