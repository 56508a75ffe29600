-- list_console_actions: one page of the console's actions, newest first, with ids below the
-- cursor (the last id of the previous page), for the audit page.
SELECT a.id, a.requested_at, a.operator, a.action, a.user_id, a.reference_id, a.reason,
       a.request, a.result, a.answer, a.finished_at
  FROM credits.console_actions a
 WHERE %(before)s::bigint IS NULL OR a.id < %(before)s::bigint
 ORDER BY a.id DESC
 LIMIT %(limit)s
