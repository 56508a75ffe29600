-- add_operator: a new console operator; no row back when the name is taken (the command then
-- refuses: a password is changed by removing the operator and adding them again).
INSERT INTO credits.operators (name, role, password_hash)
VALUES (%(name)s, %(role)s, %(password_hash)s)
ON CONFLICT ON CONSTRAINT operators_pkey DO NOTHING
RETURNING name, role, created_at
