-- list_operators: every console operator by name, without their password hash.
SELECT name, role, created_at
  FROM credits.operators
 ORDER BY name
