-- Termination and erasure (解約とデータ消去). A terminated tenant is locked out at once;
-- its purge job is due `purge_due_ms`. Until that job starts, the termination can be
-- withdrawn (the row is deleted and the tenant gets back `status_before`). The purge counts
-- what the tenant has in storage before it deletes anything (`purge_started_ms` and the
-- counts), so a purge cut off and run again still reports what there was.
CREATE TABLE tenant_terminations (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    status_before TEXT NOT NULL CHECK (status_before IN ('active', 'suspended')),
    terminated_ms BIGINT NOT NULL,
    terminated_by TEXT NOT NULL,
    purge_due_ms BIGINT NOT NULL,
    job_id TEXT NOT NULL,
    purge_started_ms BIGINT,
    objects BIGINT,
    bytes BIGINT,
    snapshots BIGINT,
    purged_ms BIGINT
);

-- What each purge deleted, signed with the service's Ed25519 key (`record`: the signed
-- record as served, JSON). Kept for ever: it is the proof of erasure.
CREATE TABLE deletion_records (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    service_code TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX deletion_records_time ON deletion_records (created_ms);
