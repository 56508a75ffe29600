-- read_clock: the service's clock, which is the database's: now() (the transaction's start), as
-- the SQL functions and the jobs' statements see it. A run's default date and the status
-- route's age of the last success are read from it, so the service and the database never
-- disagree on what day it is, whatever the clock of the machine the service runs on says.
SELECT now() AS now
