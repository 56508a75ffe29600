-- finish_console_action: give a recorded console action its result and the ledger's answer.
UPDATE credits.console_actions
   SET result = %(result)s, answer = %(answer)s, finished_at = clock_timestamp()
 WHERE id = %(id)s
