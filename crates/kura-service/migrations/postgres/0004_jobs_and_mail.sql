-- Durable background work and outgoing mail.
--
-- `jobs`: one row per run of a job kind (verify, gc, expiry, mail), for one tenant or
-- for the service. A server runs a job only while it holds its lease (`lease_owner`,
-- `lease_until_ms`), taken with a conditional UPDATE, so with several servers on one
-- database each job runs once; a lease that ran out (a crashed server) is taken over.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant_id TEXT REFERENCES tenants (id),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- JSON: what the run is asked to do (e.g. {"read_data": true}).
    params TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    queued_ms BIGINT NOT NULL,
    -- Not before this time.
    due_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    progress TEXT,
    -- JSON: what a finished run found (e.g. a verify report).
    result TEXT,
    error TEXT
);
CREATE INDEX jobs_due ON jobs (status, due_ms);
CREATE INDEX jobs_tenant ON jobs (tenant_id, queued_ms);
CREATE INDEX jobs_queued ON jobs (queued_ms);
-- One pending run per kind, tenant, parameters and requester: a second request while one
-- waits or runs gets that one (and two servers queuing the same mail run make one).
CREATE UNIQUE INDEX jobs_one_pending ON jobs (kind, COALESCE(tenant_id, ''), params, requested_by)
    WHERE status IN ('queued', 'running');

-- When each periodic kind is next due; the server that moves `next_ms` on queues the
-- runs, so several servers queue each round once.
CREATE TABLE job_schedules (
    name TEXT PRIMARY KEY,
    next_ms BIGINT NOT NULL
);

-- Mail waiting to go, sent, or given up. An operation writes its mail here in its own
-- transaction; the mail job renders and delivers it with retries. `content` (JSON) may
-- hold a one-time link, so it is emptied once the message is sent or given up.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenants (id),
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    language TEXT NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    created_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    -- A message still unsent by then is given up (a reset link that has expired).
    give_up_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_ms BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_ms);
CREATE INDEX mail_outbox_tenant ON mail_outbox (tenant_id, created_ms);

-- The language of mail and pages: the user's own choice, else the tenant's default,
-- else Japanese for tenants in Asia/Tokyo and English otherwise.
ALTER TABLE tenant_users ADD COLUMN language TEXT;
ALTER TABLE tenants ADD COLUMN language TEXT;

-- Settings the servers of one service share. `key_check` holds a value sealed with the
-- service key, so a server started with another key refuses to start instead of failing
-- to open the secrets later.
CREATE TABLE service_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
