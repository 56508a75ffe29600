-- count_sign_in_failures: the failed console sign-ins of the last %(seconds)s seconds for a name
-- and for an address, each counted on its own: either reaching the limit refuses the sign-in.
SELECT count(*) FILTER (WHERE f.name = %(name)s) AS by_name,
       count(*) FILTER (WHERE f.address = %(address)s) AS by_address
  FROM credits.console_sign_in_failures f
 WHERE f.failed_at > now() - make_interval(secs => %(seconds)s)
