-- Alerts: what needs a person's attention in a tenant (a backup that failed or did not
-- run, storage nearly full, damage found, a machine gone quiet). `subject` says what an
-- alert is about (kind, machine, plan; for the quota, its level); a subject has at most
-- one open alert, so a failure that repeats is counted on it and mailed once, until a
-- success resolves it.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    kind TEXT NOT NULL CHECK (kind IN ('backup-failed', 'backup-missed', 'backup-partial',
        'quota-warning', 'quota-exceeded', 'verify-failed', 'drill-failed', 'machine-silent')),
    subject TEXT NOT NULL,
    machine_id TEXT REFERENCES machines (id),
    plan_id TEXT,
    -- The plan's name when the alert was raised: alerts outlive a deleted plan.
    plan_name TEXT,
    message TEXT NOT NULL,
    opened_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    occurrences BIGINT NOT NULL DEFAULT 1,
    resolved_ms BIGINT,
    resolution TEXT
);
CREATE UNIQUE INDEX alerts_open ON alerts (tenant_id, subject) WHERE resolved_ms IS NULL;
CREATE INDEX alerts_by_time ON alerts (tenant_id, opened_ms);

-- Whether a user is mailed new and resolved alerts (admins and operators with an
-- address; each may turn it off).
ALTER TABLE tenant_users ADD COLUMN alert_mail BOOLEAN NOT NULL DEFAULT TRUE;
