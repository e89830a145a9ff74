-- Which machine opened each upload session and committed each snapshot: agent
-- credentials see and use only their own machine's (the vault catalog knows no machines).

CREATE TABLE upload_sessions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    session_id TEXT NOT NULL,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);

CREATE TABLE snapshot_owners (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    snapshot_id TEXT NOT NULL,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, snapshot_id)
);
CREATE INDEX snapshot_owners_machine ON snapshot_owners (tenant_id, machine_id);
