-- Metering for billing (検針): what each tenant sent and fetched, per day in its time zone,
-- counted as the vault protocol moves the bytes (packs uploaded; blobs read back, which
-- is a restore's egress). The daily figures of what is stored are in `usage_days`, which
-- now also keeps the logical size of the live snapshots (before dedup).
CREATE TABLE traffic_days (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    day TEXT NOT NULL,
    uploaded_bytes BIGINT NOT NULL DEFAULT 0,
    restored_bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

ALTER TABLE usage_days ADD COLUMN logical_bytes BIGINT NOT NULL DEFAULT 0;
