-- read_notice_horizon: the reach of an expiring-soon scan at the cutoff (NULL: now): from the
-- previous scan's horizon and snapshot (NULL before the first scan) to [notifications]
-- expiring_days after the cutoff, never back. No row without the setting: nothing to scan.
-- Run after lock_expiring_notices, so it reads the horizon the scan before this one left.
SELECT coalesce(%(cutoff)s, now()) AS cutoff,
       greatest(h.horizon,
                coalesce(%(cutoff)s, now()) + make_interval(days => n.expiring_days)) AS horizon,
       h.horizon AS previous,
       h.seen::text AS seen
  FROM credits.notifications n
  LEFT JOIN credits.notice_horizon h ON true
 WHERE n.expiring_days IS NOT NULL
