-- upsert_package: create a credit pack or change what it grants from the next purchase on.
INSERT INTO credits.packages (package_id, credits, bonus, validity_days)
VALUES (%(package_id)s, %(credits)s, %(bonus)s, %(validity_days)s)
ON CONFLICT (package_id)
DO UPDATE SET credits = excluded.credits, bonus = excluded.bonus,
              validity_days = excluded.validity_days
