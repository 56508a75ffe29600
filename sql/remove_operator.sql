-- remove_operator: delete a console operator; their sessions end at their next request.
DELETE FROM credits.operators
 WHERE name = %(name)s
RETURNING name
