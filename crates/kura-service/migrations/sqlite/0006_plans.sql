-- Protection plans: what a machine backs up, when (a cron expression in the tenant's
-- time zone) and what is kept. A plan belongs to one tenant and is assigned to some of
-- its machines; the agent daemon fetches its machine's plans.
--
-- `sources` and `excludes` are JSON arrays of strings; `retention` is a JSON object of
-- the `keep_*` counts (all zero: keep every snapshot).
CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('files', 'image')),
    sources TEXT NOT NULL,
    excludes TEXT NOT NULL,
    schedule TEXT NOT NULL,
    retention TEXT NOT NULL,
    bandwidth_limit BIGINT CHECK (bandwidth_limit > 0),
    pre_hook TEXT,
    post_hook TEXT,
    enabled BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE plan_machines (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    plan_id TEXT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    PRIMARY KEY (plan_id, machine_id)
);
CREATE INDEX plan_machines_machine ON plan_machines (tenant_id, machine_id);
