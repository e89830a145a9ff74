-- Identity, access control and audit: tenant users' state, portal sessions, API tokens,
-- failed logins (for throttling and lockout), the admin allow-list, provider roles, and
-- the event log with one hash chain per tenant and one for operators. Secrets (session
-- ids, CSRF tokens, API tokens) are stored only as hashes.

ALTER TABLE tenants ADD COLUMN admin_networks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tenant_users ADD COLUMN disabled_ms BIGINT;
ALTER TABLE operator_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'operator-admin';

CREATE TABLE user_sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES tenant_users (id),
    session_hash TEXT NOT NULL UNIQUE,
    csrf_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX user_sessions_user ON user_sessions (tenant_id, user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES tenant_users (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id);

-- Failed logins by the login ID as typed (existing or not, so lockout reveals nothing)
-- and by source address.
CREATE TABLE login_failures (
    login TEXT NOT NULL,
    source TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_login ON login_failures (login, at_ms);
CREATE INDEX login_failures_source ON login_failures (source, at_ms);

-- One row per chain: the last sequence number and hash, so appends serialise on it and
-- deleting the newest events is detected.
CREATE TABLE event_chains (
    chain TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL
);

CREATE TABLE events (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant_id TEXT,
    time_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    request_id TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX events_tenant_time ON events (tenant_id, time_ms);

-- TOTP: the active secret (needed to check codes, so not hashed), a secret being
-- enrolled, the last time step used (codes work once), single-use recovery codes stored
-- hashed, and the tenant's policy: 'optional', 'admins' or 'everyone'.
ALTER TABLE tenant_users ADD COLUMN totp_secret TEXT;
ALTER TABLE tenant_users ADD COLUMN totp_pending TEXT;
ALTER TABLE tenant_users ADD COLUMN totp_last_step BIGINT;
ALTER TABLE tenants ADD COLUMN totp_policy TEXT NOT NULL DEFAULT 'optional';

CREATE TABLE totp_recovery_codes (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES tenant_users (id),
    code_hash TEXT NOT NULL,
    used_ms BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Support access: until when (if at all) the tenant's admins let operators see its data.
ALTER TABLE tenants ADD COLUMN support_until_ms BIGINT;

-- Password reissue: where reset links go, and the links themselves (single use, stored
-- hashed, valid for 30 minutes).
ALTER TABLE tenant_users ADD COLUMN email TEXT;

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id TEXT NOT NULL REFERENCES tenant_users (id),
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT
);
CREATE INDEX password_resets_user ON password_resets (tenant_id, user_id);
