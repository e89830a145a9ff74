-- The two-person rule (四つの目の原則): while the service has two or more enabled
-- operator-admins, a destructive operator action (terminate a tenant, purge one now,
-- lower a tenant's immutability period, delete an operator account) waits here until a
-- second operator-admin approves or rejects it. `params` is the request as JSON, carried
-- out unchanged on approval; a request not decided by `expires_ms` has expired (pending
-- rows past that time are shown as expired and can no longer be approved). `summary`
-- says what it will do in English (the API, the logs); the console words it from
-- `details` in the reader's language.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants (id),
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- The facts the console words the summary with in each language (a JSON object).
    details TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_by_account TEXT,
    requested_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by TEXT,
    decided_ms BIGINT,
    outcome TEXT
);
CREATE INDEX approvals_status ON approvals (status, requested_ms);
