-- start_console_action: record an operator's action before the ledger is called, as pending.
INSERT INTO credits.console_actions (operator, action, user_id, reference_id, reason, request)
VALUES (%(operator)s, %(action)s, %(user_id)s, %(reference_id)s, %(reason)s, %(request)s)
RETURNING id
