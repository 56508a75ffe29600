-- Argument checks: each raises a clear error naming the argument, or answers the value. They
-- run inside the app's functions (40_grants.sql, 50_spending.sql, 60_account_and_calls.sql),
-- under their fixed search_path (no SET of their own: a SET on every call costs as much as a
-- check). The limits are written once, in migration 0004: credits.max_credits(),
-- credits.max_validity_days() and credits.max_text_length().

CREATE OR REPLACE FUNCTION credits.checked_text(value text, name text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', name USING ERRCODE = '22004';
    ELSIF btrim(value) = '' THEN
        RAISE EXCEPTION '% must not be empty', name USING ERRCODE = '22023';
    ELSIF length(value) > credits.max_text_length() THEN
        RAISE EXCEPTION '% must be at most % characters, got %', name, credits.max_text_length(),
            length(value) USING ERRCODE = '22001';
    ELSIF value ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION '% must not contain control characters', name USING ERRCODE = '22023';
    -- Spaces other than ASCII's and invisible characters (no-break, ideographic and zero-width
    -- spaces, the byte order mark, line and paragraph separators): an id that looks like
    -- another, or like nothing.
    ELSIF value ~ '[\u00A0\u00AD\u1680\u180E\u2000-\u200F\u2028-\u202F\u205F-\u2064\u3000\uFEFF]' THEN
        RAISE EXCEPTION '% must not contain invisible characters or spaces other than ASCII''s', name
            USING ERRCODE = '22023';
    END IF;
    RETURN value;
END
$$;

CREATE OR REPLACE FUNCTION credits.checked_count(value bigint, name text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '% must not be null', name USING ERRCODE = '22004';
    ELSIF value <= 0 THEN
        RAISE EXCEPTION '% must be a whole number above 0, got %', name, value
            USING ERRCODE = '22023';
    ELSIF value > credits.max_credits() THEN
        RAISE EXCEPTION '% must be at most %, got %', name, credits.max_credits(), value
            USING ERRCODE = '22003';
    END IF;
    RETURN value;
END
$$;

-- A grant's or a spend's reference: the app's own, never one of the names the service writes.
CREATE OR REPLACE FUNCTION credits.checked_grant_reference(value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF credits.checked_text(value, 'reference_id') ~ '^(subscription|registration|expire):' THEN
        RAISE EXCEPTION 'reference_id must not start with subscription:, registration: or expire:'
            USING ERRCODE = '22023';
    END IF;
    RETURN value;
END
$$;

-- The clock of a *_at call: a finite moment (NULL or infinity once made never-expiring batches).
CREATE OR REPLACE FUNCTION credits.checked_at(value timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    -- An infinite clock is no clock either (it made batches that never expire): the same
    -- 22004 as NULL, so a caller handles a missing time one way.
    IF value IS NULL THEN
        RAISE EXCEPTION 'at must not be null' USING ERRCODE = '22004';
    ELSIF NOT isfinite(value) THEN
        RAISE EXCEPTION 'at must be a finite time, got %', value USING ERRCODE = '22004';
    END IF;
    RETURN value;
END
$$;

-- When credits granted at `at` expire: validity_days on, at expires_at, or never (both NULL).
-- Days are counted in UTC, whatever the session's TimeZone (a day across a daylight saving
-- change is 24 hours all the same).
CREATE OR REPLACE FUNCTION credits.checked_expiry(
    at timestamptz, validity_days bigint, expires_at timestamptz
)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF validity_days IS NOT NULL AND expires_at IS NOT NULL THEN
        RAISE EXCEPTION 'give validity_days or expires_at, not both' USING ERRCODE = '22023';
    ELSIF validity_days IS NOT NULL THEN
        IF validity_days <= 0 THEN
            RAISE EXCEPTION 'validity_days must be a whole number above 0, got %', validity_days
                USING ERRCODE = '22023';
        ELSIF validity_days > credits.max_validity_days() THEN
            RAISE EXCEPTION 'validity_days must be at most %, got %', credits.max_validity_days(),
                validity_days USING ERRCODE = '22003';
        END IF;
        RETURN (at AT TIME ZONE 'UTC' + make_interval(days => validity_days::integer))
               AT TIME ZONE 'UTC';
    ELSIF expires_at IS NOT NULL THEN
        IF expires_at <= at THEN
            RAISE EXCEPTION 'expires_at must be in the future, got %', expires_at
                USING ERRCODE = '22023';
        ELSIF expires_at > (at AT TIME ZONE 'UTC'
                            + make_interval(days => credits.max_validity_days())) AT TIME ZONE 'UTC' THEN
            RAISE EXCEPTION 'expires_at must be within % days, got %', credits.max_validity_days(),
                expires_at USING ERRCODE = '22003';
        END IF;
    END IF;
    RETURN expires_at;
END
$$;

-- metadata: a JSON object (or NULL) of at most 4,000 characters.
CREATE OR REPLACE FUNCTION credits.checked_metadata(value jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF value IS NOT NULL AND jsonb_typeof(value) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object, got %', jsonb_typeof(value)
            USING ERRCODE = '22023';
    ELSIF length(value::text) > 4000 THEN
        RAISE EXCEPTION 'metadata must be at most 4000 characters of JSON, got %',
            length(value::text) USING ERRCODE = '22001';
    END IF;
    RETURN value;
END
$$;
