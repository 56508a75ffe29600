-- 0004_limits: the limits on what the app may ask, each written once, here. The argument checks
-- (sql/functions/30_checks.sql) and the tables' checks read them from these functions, and
-- credits/limits.py says the same to the Python side (a test compares them). A limit changes
-- what the tables accept, so changing one is a new migration.

-- The most credits a batch holds: a PostgreSQL integer's largest.
CREATE OR REPLACE FUNCTION credits.max_credits() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 2147483647 $$;

-- The longest validity: 100 years keeps every expiry a date PostgreSQL can compute.
CREATE OR REPLACE FUNCTION credits.max_validity_days() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 36500 $$;

-- The longest id, reference or name the app gives (user_id, reference_id, package_id, service).
CREATE OR REPLACE FUNCTION credits.max_text_length() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 200 $$;

DO $$
BEGIN
    IF to_regtype('credits.validity_days') IS NULL THEN
        CREATE DOMAIN credits.validity_days AS integer
            CHECK (VALUE BETWEEN 1 AND credits.max_validity_days());
    END IF;
END
$$;

-- The sign-up bonus's and the packs' validity, which 0001 checked with the number written out.
ALTER TABLE credits.registration
    DROP CONSTRAINT IF EXISTS registration_validity_days_check,
    ALTER COLUMN validity_days TYPE credits.validity_days;
ALTER TABLE credits.packages
    DROP CONSTRAINT IF EXISTS packages_validity_days_check,
    ALTER COLUMN validity_days TYPE credits.validity_days,
    -- A pack is one batch of credits + bonus: it must fit a batch's amount.
    DROP CONSTRAINT IF EXISTS packages_amount_fits,
    ADD CONSTRAINT packages_amount_fits CHECK (credits::bigint + bonus <= credits.max_credits());

-- checked_text reads its limit now: the length argument every caller gave is gone.
DROP FUNCTION IF EXISTS credits.checked_text(text, text, integer);

INSERT INTO credits.schema_migrations (version, name) VALUES (4, 'limits')
ON CONFLICT (version) DO NOTHING;
