"""The limits on what the app may ask, as the schema's credits.max_*() functions say them
(migration 0004): the plans file, the command line and the console check them before the
database does. A test checks that the two agree."""

# The most credits a batch holds: a PostgreSQL integer's largest (credits.max_credits()).
MAX_CREDITS = 2**31 - 1
# The longest validity, 100 years: an expiry PostgreSQL can compute (credits.max_validity_days()).
MAX_VALIDITY_DAYS = 36_500
# The longest id, reference or name (credits.max_text_length()).
MAX_TEXT_LENGTH = 200
