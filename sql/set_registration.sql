-- set_registration: the sign-up bonus every new user is granted once.
INSERT INTO credits.registration (singleton, credits, validity_days)
VALUES (true, %(credits)s, %(validity_days)s)
ON CONFLICT (singleton)
DO UPDATE SET credits = excluded.credits, validity_days = excluded.validity_days
