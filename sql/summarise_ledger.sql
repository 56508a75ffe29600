-- summarise_ledger: fold the next committed ledger entries, at most %(max_entries)s, into the
-- daily summary; answers how many ids it went past (0: up to date).
SELECT credits.summarise_ledger(%(max_entries)s) AS folded
