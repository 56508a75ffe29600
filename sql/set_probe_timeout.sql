-- set_probe_timeout: the /healthz probe's statement timeout, for its own transaction only, so a
-- database too slow to answer SELECT 1 in time is reported as down instead of waited for.
SELECT set_config('statement_timeout', %(milliseconds)s, true)
