-- What the portal shows of machines and their backups without opening the vault, and
-- the tenant's usage day by day.
--
-- `snapshot_owners` gains each snapshot's public facts (from its manifest), written with
-- the claim; `committed` is set once the vault has committed the snapshot, and cleared
-- when the snapshot is no longer live. The metering job reconciles both with the vault
-- (a crash between the vault's commit and ours, snapshots forgotten by any path).
ALTER TABLE snapshot_owners ADD COLUMN committed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE snapshot_owners ADD COLUMN time_ns BIGINT;
ALTER TABLE snapshot_owners ADD COLUMN kind TEXT;
ALTER TABLE snapshot_owners ADD COLUMN source TEXT;
ALTER TABLE snapshot_owners ADD COLUMN bytes BIGINT;
ALTER TABLE snapshot_owners ADD COLUMN bytes_added BIGINT;
ALTER TABLE snapshot_owners ADD COLUMN errors BIGINT;
-- Covers the portal's per-machine sums and finds the newest snapshot of each source.
CREATE INDEX snapshot_owners_latest ON snapshot_owners (tenant_id, committed, machine_id, source, time_ns, bytes_added);

-- When the machine's agent was last authenticated (written at most every few minutes).
ALTER TABLE machines ADD COLUMN last_seen_ms BIGINT;

-- One row per tenant and day (`YYYY-MM-DD` in the tenant's time zone), the last
-- measurement of that day by the metering job.
CREATE TABLE usage_days (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    day TEXT NOT NULL,
    stored_bytes BIGINT NOT NULL,
    snapshots BIGINT NOT NULL,
    machines BIGINT NOT NULL,
    measured_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);
