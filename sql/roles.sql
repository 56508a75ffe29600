-- roles: example least-privilege roles. The service role has the rights its jobs and
-- consumers use, nothing more: it can read plans and subscriptions, add batches, ledger entries
-- and runs, and change only the columns that move credits; it cannot create, alter, drop or
-- truncate anything, delete anything but its own pass positions, nor rewrite a ledger entry.
-- The app role calls the app's interface and writes its subscriptions, nothing more.
--
-- Run by the schema's owner after the migrations (`python -m credits init-db`), naming one role
-- or both; safe to run again. A role is created NOLOGIN: give it a login yourself. An error
-- (no role named) stops psql with a non-zero status (the line below; psql reads it, the
-- service's own runner leaves it out).
--
--   psql "$DATABASE_URL" -c "SET credits.service_role = 'credits_service'" -f sql/roles.sql
--   psql "$DATABASE_URL" -c "ALTER ROLE credits_service LOGIN PASSWORD '...'"
--
-- With credits.app_role set (alone or with the service role), it makes the role your app
-- connects as (docs/API.md):
--
--   psql "$DATABASE_URL" -c "SET credits.app_role = 'credits_app'" -f sql/roles.sql
--
-- Then run the service as its role with CREDITS_APPLY_SCHEMA=false. Operators' commands
-- that write plans (load-plans) or the schema (init-db) run as the owner.
\set ON_ERROR_STOP on
DO $$
DECLARE
    service_role text := current_setting('credits.service_role', true);
BEGIN
    IF coalesce(service_role, '') = '' THEN
        IF coalesce(current_setting('credits.app_role', true), '') <> '' THEN
            RETURN;  -- the app's role only
        END IF;
        RAISE EXCEPTION 'name the role first: SET credits.service_role = ''<role>'' '
                        '(or credits.app_role, or both)';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = service_role) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', service_role);
    END IF;

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), service_role);
    EXECUTE format('GRANT USAGE ON SCHEMA credits TO %I', service_role);

    -- Which migrations and function files the database has had: read at start, to refuse an
    -- out-of-date schema.
    EXECUTE format('GRANT SELECT ON credits.schema_migrations, credits.schema_functions TO %I',
                   service_role);

    -- Input written by the host app: read only.
    EXECUTE format('GRANT SELECT ON credits.plans, credits.subscriptions TO %I', service_role);

    -- Batches: granted (insert), drawn down and closed (remaining and status only).
    -- SELECT ... FOR UPDATE needs the UPDATE right too.
    EXECUTE format('GRANT SELECT, INSERT ON credits.batches TO %I', service_role);
    EXECUTE format('GRANT UPDATE (remaining, status) ON credits.batches TO %I', service_role);

    -- The ledger is append-only for the service.
    EXECUTE format('GRANT SELECT, INSERT ON credits.transactions TO %I', service_role);

    -- The console (docs/CONSOLE.md): operators are read (the operator commands run as the
    -- owner); failed sign-ins are counted and pruned; console actions are recorded, then given
    -- their result.
    EXECUTE format('GRANT SELECT ON credits.operators TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON credits.console_sign_in_failures TO %I',
                   service_role);
    EXECUTE format('GRANT SELECT, INSERT ON credits.console_actions TO %I', service_role);
    EXECUTE format('GRANT UPDATE (result, answer, finished_at) ON credits.console_actions TO %I',
                   service_role);

    -- Balances: created on the first grant, then only raised or lowered.
    EXECUTE format('GRANT SELECT, INSERT ON credits.balances TO %I', service_role);
    EXECUTE format('GRANT UPDATE (balance, updated_at) ON credits.balances TO %I', service_role);

    -- Each subscription's last granted month, the grant's shortcut: added, then moved on.
    EXECUTE format('GRANT SELECT, INSERT ON credits.subscription_grants TO %I', service_role);
    EXECUTE format('GRANT UPDATE (period_start) ON credits.subscription_grants TO %I', service_role);

    -- Runs: started, then marked succeeded, partial, failed or abandoned.
    EXECUTE format('GRANT SELECT, INSERT ON credits.job_runs TO %I', service_role);
    EXECUTE format(
        'GRANT UPDATE (status, finished_at, results, error) ON credits.job_runs TO %I',
        service_role
    );
    -- The subscriptions a grant run could not grant: recorded by the run, read by the console.
    EXECUTE format('GRANT SELECT, INSERT ON credits.job_run_failures TO %I', service_role);

    -- Where each job's pass stands: written by every chunk, cleared when a new pass starts.
    -- It holds positions only, never credits, so the service may delete its rows.
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON credits.job_progress TO %I', service_role
    );

    -- The events outbox (docs/EVENTS.md): the changes' triggers write it as the owner; the
    -- service announces batches lapsing soon, marks deliveries and prunes past the retention.
    EXECUTE format('GRANT SELECT ON credits.notifications TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON credits.notice_horizon TO %I', service_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON credits.events TO %I', service_role);
    EXECUTE format(
        'GRANT UPDATE (delivered_at, attempts, next_attempt_at, last_error, given_up_at) '
        'ON credits.events TO %I', service_role
    );
    EXECUTE format('GRANT EXECUTE ON FUNCTION credits.events_after(bigint, integer) TO %I',
                   service_role);
    -- Delivery runs that attempted nothing or are past the retention (no other run).
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION credits.prune_delivery_runs(uuid, integer, integer) TO %I',
        service_role
    );

    -- The ledger's daily summary: read by the console, brought up to date by its functions.
    EXECUTE format('GRANT SELECT ON credits.ledger_days, credits.ledger_summary TO %I',
                   service_role);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION credits.mark_ledger_summary(), '
        'credits.summarise_ledger(integer) TO %I',
        service_role
    );

    -- The grant rules. Functions are executable by PUBLIC unless the DBA revoked that.
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION credits.due_day(timestamptz, date), '
        'credits.due_grants(date, text[], date, text, text) TO %I',
        service_role
    );

    -- The app's interface, at any clock (the service's tools and tests back-date calls).
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION '
        'credits.grant_credits_at(timestamptz, text, bigint, text, text, bigint, timestamptz, '
        'jsonb), credits.buy_package_at(timestamptz, text, text, text), '
        'credits.can_buy_package(text, text), '
        'credits.grant_registration_bonus_at(timestamptz, text), '
        'credits.spend_at(timestamptz, text, bigint, text, bigint, text, jsonb), '
        'credits.reverse_spend_at(timestamptz, text, text), '
        'credits.reverse_spend_at(timestamptz, text, text, jsonb), '
        'credits.void_grant_at(timestamptz, text), credits.void_grant_at(timestamptz, text, jsonb), '
        'credits.account_at(timestamptz, text, text[]), '
        'credits.statement(text, integer, bigint) TO %I',
        service_role
    );
END
$$;

-- The app's role: it calls the interface's functions at the database's clock, and writes its
-- subscriptions (its input to the grant job, docs/DATABASE.md). It reads and writes no other
-- table itself: the functions run as the schema's owner.
DO $$
DECLARE
    app_role text := current_setting('credits.app_role', true);
BEGIN
    IF coalesce(app_role, '') = '' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = app_role) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', app_role);
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app_role);
    EXECUTE format('GRANT USAGE ON SCHEMA credits TO %I', app_role);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION '
        'credits.grant_credits(text, bigint, text, text, bigint, timestamptz, jsonb), '
        'credits.buy_package(text, text, text), credits.can_buy_package(text, text), '
        'credits.grant_registration_bonus(text), credits.spend(text, bigint, text, jsonb), '
        'credits.spend_service(text, text, bigint, text, jsonb), '
        'credits.reverse_spend(text, text), credits.reverse_spend(text, text, jsonb), '
        'credits.void_grant(text), credits.void_grant(text, jsonb), '
        'credits.account(text, text[]), credits.statement(text, integer, bigint), '
        'credits.events_after(bigint, integer) TO %I',
        app_role
    );
    -- Subscriptions are the app's to write: added, changed, ended or removed (reading them is
    -- what an upsert or an UPDATE ... WHERE needs).
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON credits.subscriptions TO %I', app_role
    );
END
$$;
