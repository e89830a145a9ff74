//! Restore drills: a machine's agent daemon restores its plan's latest snapshot into a
//! scratch directory (or reads an image through the restore path), checks every byte
//! against the snapshot, and reports.

use std::time::Duration;

use crate::ids::{DrillId, MachineId, PlanId};

/// How often a plan's snapshots are drilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillFrequency {
    Weekly,
    Monthly,
}

text_enum!(DrillFrequency, "drill frequency", { Weekly = "weekly", Monthly = "monthly" });

impl DrillFrequency {
    /// How long after a drill that passed the next one is due.
    pub fn period(self) -> Duration {
        let days = match self {
            DrillFrequency::Weekly => 7,
            DrillFrequency::Monthly => 30,
        };
        Duration::from_secs(days * 86_400)
    }
}

/// Where a drill stands. `abandoned`: it could not finish for reasons that say nothing
/// about the backup (the daemon stopped, the snapshot was forgotten meanwhile); it is
/// tried again at the next quiet time and raises no alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillStatus {
    Running,
    Passed,
    Failed,
    Abandoned,
}

text_enum!(DrillStatus, "drill status", {
    Running = "running",
    Passed = "passed",
    Failed = "failed",
    Abandoned = "abandoned",
});

impl DrillStatus {
    pub fn is_final(self) -> bool {
        self != DrillStatus::Running
    }
}

/// What a drill found so far, or in the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrillCounts {
    /// Files restored and checked (1 for an image).
    pub files: u64,
    /// Bytes restored and checked.
    pub bytes: u64,
    /// Files (or image ranges) that did not come back as the snapshot holds them.
    pub mismatches: u64,
}

/// One drill as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRecord {
    pub id: DrillId,
    pub plan_id: PlanId,
    /// The plan's name when the drill ran: the history outlives a renamed plan.
    pub plan_name: String,
    pub machine_id: MachineId,
    /// Full hex id of the snapshot drilled.
    pub snapshot_id: String,
    pub status: DrillStatus,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub updated_ms: i64,
    pub counts: DrillCounts,
    /// Why it failed (the first problems found), or was abandoned.
    pub error: Option<String>,
}

/// A machine's report on its drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillReport {
    pub status: DrillStatus,
    pub counts: DrillCounts,
    pub error: Option<String>,
}

/// Which drills a listing answers.
#[derive(Debug, Clone, Default)]
pub struct DrillFilter {
    pub plan: Option<PlanId>,
    pub machine: Option<MachineId>,
    pub status: Option<DrillStatus>,
    pub limit: u32,
}
