-- upsert_service: create a service or change its cost in credits per use.
INSERT INTO credits.services (service, cost)
VALUES (%(service)s, %(cost)s)
ON CONFLICT (service) DO UPDATE SET cost = excluded.cost
