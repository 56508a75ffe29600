-- find_operator: one console operator by name, with the hash their password is checked against.
SELECT name, role, password_hash, created_at
  FROM credits.operators
 WHERE name = %(name)s
