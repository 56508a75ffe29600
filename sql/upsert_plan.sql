-- upsert_plan: create a plan or change what it grants from the next grant on.
INSERT INTO credits.plans (plan_id, monthly_credits, validity_days)
VALUES (%(plan_id)s, %(monthly_credits)s, %(validity_days)s)
ON CONFLICT (plan_id)
DO UPDATE SET monthly_credits = excluded.monthly_credits, validity_days = excluded.validity_days
