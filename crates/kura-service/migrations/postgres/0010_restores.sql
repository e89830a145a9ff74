-- Restore jobs: a user with `restore` asks a machine to restore a snapshot (its own, or
-- another machine's of the tenant); the machine's agent daemon performs it and reports.
-- `snapshot_machine_id` is whose snapshot it is: a job grants the restoring machine
-- read access to that one snapshot while the job is queued or running.
CREATE TABLE restores (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    machine_id TEXT NOT NULL REFERENCES machines (id),
    snapshot_id TEXT NOT NULL,
    snapshot_machine_id TEXT NOT NULL REFERENCES machines (id),
    target TEXT NOT NULL,
    paths TEXT NOT NULL,
    overwrite BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    requested_by TEXT NOT NULL,
    queued_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    files BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX restores_by_machine ON restores (tenant_id, machine_id, status);
CREATE INDEX restores_by_time ON restores (tenant_id, queued_ms);
