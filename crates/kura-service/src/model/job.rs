//! A job: one run of background work, queued by an operation, a schedule or an operator,
//! and run by whichever server takes its lease.

use crate::ids::TenantId;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Checks a tenant's vault (optionally reading every pack) and heals what it can.
    Verify,
    /// Deletes what no snapshot of a tenant's vault needs any more.
    Gc,
    /// Deletes ended sessions, used or expired reset links and registration tokens, old
    /// failed sign-ins, and old job and mail records.
    Expiry,
    /// Delivers the mail outbox.
    Mail,
    /// Measures a tenant's usage for its history and brings the per-machine backup facts
    /// in line with the vault.
    Meter,
    /// Erases a terminated tenant's data and leaves a signed deletion record.
    Purge,
    /// Rebuilds a tenant's vault catalog from the objects in storage.
    RebuildCatalog,
    /// Backs up the service's own metadata (database, keys, TLS material, catalogs).
    MetadataBackup,
}

text_enum!(JobKind, "job kind", {
    Verify = "verify",
    Gc = "gc",
    Expiry = "expiry",
    Mail = "mail",
    Meter = "meter",
    Purge = "purge",
    RebuildCatalog = "rebuild-catalog",
    MetadataBackup = "metadata-backup",
});

impl JobKind {
    /// Whether a run concerns one tenant (and needs its id) or the whole service.
    pub fn per_tenant(self) -> bool {
        matches!(
            self,
            JobKind::Verify | JobKind::Gc | JobKind::Meter | JobKind::Purge | JobKind::RebuildCatalog
        )
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

text_enum!(JobStatus, "job status", {
    Queued = "queued",
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
});

impl JobStatus {
    /// Whether the run has ended, well or not.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// 32 hex digits.
    pub id: String,
    pub kind: JobKind,
    pub tenant_id: Option<TenantId>,
    pub status: JobStatus,
    /// JSON: what the run is asked to do.
    pub params: String,
    /// Who asked: `schedule`, an operator's name, an agent's.
    pub requested_by: String,
    pub queued_ms: i64,
    pub due_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Runs begun, including ones cut off by a crash and taken over.
    pub attempts: u32,
    /// The server holding the lease while it runs; the one that ran it last once it
    /// ended.
    pub lease_owner: Option<String>,
    pub progress: Option<String>,
    /// JSON: what a finished run found.
    pub result: Option<String>,
    pub error: Option<String>,
}

/// A job about to be queued.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: JobKind,
    pub tenant_id: Option<&'a TenantId>,
    pub params: String,
    pub requested_by: &'a str,
    pub due_ms: i64,
}

/// Which jobs to list; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
    pub tenant_id: Option<TenantId>,
    /// At most this many, newest first.
    pub limit: u32,
}
