-- Operator accounts: provider staff sign in to the console on the management listener
-- with a login ID, a password and a TOTP code (mandatory: enrolled at the first
-- sign-in). Their sessions and API tokens are stored by hash like tenant users'. The
-- tokens of a fresh service (bootstrap, quickstart) belong to no account.
CREATE TABLE operator_accounts (
    id TEXT PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('operator-admin', 'operator')),
    password_hash TEXT NOT NULL,
    email TEXT,
    totp_secret TEXT,
    totp_pending TEXT,
    totp_last_step BIGINT,
    -- NULL while the one-time password the account was created with is still in force.
    password_changed_ms BIGINT,
    created_ms BIGINT NOT NULL,
    disabled_ms BIGINT
);

CREATE TABLE operator_sessions (
    id TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operator_accounts (id),
    session_hash TEXT NOT NULL UNIQUE,
    csrf_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

ALTER TABLE operator_tokens ADD COLUMN operator_id TEXT REFERENCES operator_accounts (id);
ALTER TABLE operator_tokens ADD COLUMN expires_ms BIGINT;
ALTER TABLE operator_tokens ADD COLUMN last_used_ms BIGINT;
