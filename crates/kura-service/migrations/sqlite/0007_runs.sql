-- Runs of protection plans: one row per machine and scheduled slot of a plan, written
-- by the agent daemon as it starts, reports on and ends a run, and by the server when a
-- slot passes without a run (`missed`) or a run stops reporting (`failed`). A slot has
-- at most one row, so an agent back from downtime runs a missed plan once.
--
-- `plan_name` is kept with the run: the history outlives a deleted or renamed plan.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    plan_id TEXT NOT NULL,
    plan_name TEXT NOT NULL,
    machine_id TEXT NOT NULL REFERENCES machines (id),
    status TEXT NOT NULL
        CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'missed', 'skipped')),
    scheduled_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    files BIGINT NOT NULL DEFAULT 0,
    bytes_read BIGINT NOT NULL DEFAULT 0,
    bytes_added BIGINT NOT NULL DEFAULT 0,
    snapshot_id TEXT,
    error TEXT,
    UNIQUE (tenant_id, plan_id, machine_id, scheduled_ms)
);
CREATE INDEX runs_by_time ON runs (tenant_id, scheduled_ms);
CREATE INDEX runs_running ON runs (status, updated_ms);

-- When a machine was given a plan: slots before it were never its to run.
ALTER TABLE plan_machines ADD COLUMN assigned_ms BIGINT NOT NULL DEFAULT 0;
