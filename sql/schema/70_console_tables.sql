-- The operators' console's tables (docs/CONSOLE.md): operators and their roles, recent failed
-- sign-ins, and the audit of every console action. Arrived with migration 0002.

-- An operator of the console. Only a password hash is stored (werkzeug's scrypt, salted).
CREATE TABLE credits.operators (
    name          text PRIMARY KEY CONSTRAINT operators_name_check
                  CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    -- viewer: sees every page; operator: may also grant, reverse and void.
    role          text NOT NULL CONSTRAINT operators_role_check
                  CHECK (role IN ('viewer', 'operator')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A failed sign-in, by the name tried and the address it came from: a name or an address
-- with too many in the last minute is refused before its password is checked. Old rows are
-- deleted as new ones come.
CREATE TABLE credits.console_sign_in_failures (
    name      text NOT NULL,
    address   text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

-- Every action an operator took from the console: written before the ledger is called
-- (pending), then given its result, so an action whose process died shows as pending.
CREATE TABLE credits.console_actions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now(),
    operator     text NOT NULL,
    action       text NOT NULL CONSTRAINT console_actions_action_check
                 CHECK (action IN ('grant', 'reverse', 'void')),
    user_id      text NOT NULL,
    reference_id text NOT NULL,
    reason       text NOT NULL,
    request      jsonb NOT NULL,  -- what was asked: the amount and validity of a grant
    result       text NOT NULL DEFAULT 'pending' CONSTRAINT console_actions_result_check
                 CHECK (result IN ('pending', 'done', 'replayed', 'refused', 'failed')),
    answer       jsonb NULL,      -- the function's answer, or the refusal's code and message
    finished_at  timestamptz NULL
);

CREATE INDEX console_sign_in_failures_failed_at_idx
    ON credits.console_sign_in_failures (failed_at);
