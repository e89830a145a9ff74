-- Restore drills: a plan with `drill` set has each of its machines restore the plan's
-- latest snapshot into a scratch directory (image snapshots are read through the restore
-- path without writing), check every byte against the snapshot and report. One row per
-- drill; at most one drill of a plan runs on a machine at a time.
ALTER TABLE plans ADD COLUMN drill TEXT CHECK (drill IN ('weekly', 'monthly'));

CREATE TABLE drills (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    plan_id TEXT NOT NULL,
    plan_name TEXT NOT NULL,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    snapshot_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'passed', 'failed', 'abandoned')),
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    files BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    mismatches BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE UNIQUE INDEX drills_running ON drills (tenant_id, plan_id, machine_id) WHERE status = 'running';
CREATE INDEX drills_by_time ON drills (tenant_id, started_ms);
