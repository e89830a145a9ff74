//! Runs of protection plans: what a machine did (or failed to do) at each scheduled slot.

use crate::ids::{MachineId, PlanId, RunId};

/// Where a run stands. `missed` and `skipped` runs never started: the server marks a
/// slot `missed` when no run began within the grace, the agent marks it `skipped` when
/// the plan's previous run was still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Partial,
    Failed,
    Missed,
    Skipped,
}

text_enum!(RunStatus, "run status", {
    Running = "running",
    Succeeded = "succeeded",
    Partial = "partial",
    Failed = "failed",
    Missed = "missed",
    Skipped = "skipped",
});

impl RunStatus {
    /// Whether the run has ended (or never will start).
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }

    /// Whether the run saved a snapshot.
    pub fn saved_snapshot(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Partial)
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: RunId,
    pub plan_id: PlanId,
    /// The plan's name when the run was recorded.
    pub plan_name: String,
    pub machine_id: MachineId,
    pub status: RunStatus,
    /// The slot the run is for.
    pub scheduled_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The last report (or the server's last judgement).
    pub updated_ms: i64,
    pub counts: RunCounts,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
}

/// What a run has read and stored so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

/// An agent's report on its run: progress while `running`, the outcome at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub status: RunStatus,
    pub counts: RunCounts,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
}

/// Which runs a listing answers; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub machine: Option<MachineId>,
    pub plan: Option<PlanId>,
    pub status: Option<RunStatus>,
    /// Slots at or after this time.
    pub from_ms: Option<i64>,
    /// Slots before this time.
    pub to_ms: Option<i64>,
    pub limit: u32,
}
