-- set_probe_timeout: the statement timeout of /healthz's probe and of /metrics' job query, for
-- their own transaction only, so a database too slow to answer in time is reported as down
-- instead of waited for.
SELECT set_config('statement_timeout', %(milliseconds)s, true)
