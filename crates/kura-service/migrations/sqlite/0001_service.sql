-- Service metadata: operators' tokens, tenants, their admin users, machines, agent
-- credentials and registration tokens. Times are milliseconds since the Unix epoch (UTC);
-- secrets are stored only as hashes.

CREATE TABLE operator_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    service_code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    quota_bytes BIGINT NOT NULL CHECK (quota_bytes >= 0),
    max_machines BIGINT NOT NULL CHECK (max_machines >= 0),
    region TEXT NOT NULL,
    encryption_required BOOLEAN NOT NULL,
    immutable_days BIGINT NOT NULL CHECK (immutable_days >= 0),
    -- JSON array of CIDR strings; empty means agents may connect from anywhere.
    agent_networks TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    time_zone TEXT NOT NULL DEFAULT 'Asia/Tokyo',
    created_ms BIGINT NOT NULL
);

CREATE TABLE tenant_users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX tenant_users_tenant ON tenant_users (tenant_id);

CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX machines_tenant ON machines (tenant_id);

CREATE TABLE agent_credentials (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    machine_id TEXT NOT NULL REFERENCES machines (id),
    credential_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX agent_credentials_machine ON agent_credentials (machine_id);

CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT,
    used_by_machine TEXT REFERENCES machines (id)
);
CREATE INDEX registration_tokens_tenant ON registration_tokens (tenant_id);
