//! Restore jobs: a snapshot restored by a machine's agent daemon at a user's request.

use crate::ids::{MachineId, RestoreId};

/// Where a restore job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

text_enum!(RestoreStatus, "restore status", {
    Queued = "queued",
    Running = "running",
    Succeeded = "succeeded",
    Failed = "failed",
});

impl RestoreStatus {
    pub fn is_final(self) -> bool {
        matches!(self, RestoreStatus::Succeeded | RestoreStatus::Failed)
    }
}

/// One restore job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRecord {
    pub id: RestoreId,
    /// The machine that restores.
    pub machine_id: MachineId,
    /// Full hex id of the snapshot.
    pub snapshot_id: String,
    /// Whose snapshot it is.
    pub snapshot_machine_id: MachineId,
    pub target: String,
    /// Paths inside the snapshot; empty: everything.
    pub paths: Vec<String>,
    pub overwrite: bool,
    pub status: RestoreStatus,
    /// Login ID of who asked.
    pub requested_by: String,
    pub queued_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub updated_ms: i64,
    pub files: u64,
    pub bytes: u64,
    pub error: Option<String>,
}

/// A machine's report on its restore job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub status: RestoreStatus,
    pub files: u64,
    pub bytes: u64,
    pub error: Option<String>,
}
