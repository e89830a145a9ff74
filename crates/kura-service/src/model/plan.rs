//! Protection plans: what a machine backs up, when, and what is kept of it.

use serde::{Deserialize, Serialize};

use super::DrillFrequency;
use crate::ids::{MachineId, PlanId};

/// What a plan backs up: file trees, or one disk image (a device or an image file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    Files,
    Image,
}

text_enum!(PlanKind, "plan kind", { Files = "files", Image = "image" });

/// How many snapshots a plan keeps of each machine and source, with `kura forget`'s
/// (restic's) rules: the `keep_last` newest, and the newest of each of the last
/// `keep_hourly` hours (days, weeks, months, years) that have one. All zero keeps every
/// snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlanRetention {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
}

impl PlanRetention {
    /// Whether the plan keeps every snapshot.
    pub fn keeps_all(&self) -> bool {
        *self == PlanRetention::default()
    }
}

/// An upload rate limit, written as the API writes it (`20MiB/s`).
pub use kura_api::rate::BandwidthLimit;

/// What a plan is: everything a user sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    pub name: String,
    pub kind: PlanKind,
    /// Absolute paths; for an image plan, the one device or image file.
    pub sources: Vec<String>,
    /// Glob patterns left out of file backups.
    pub excludes: Vec<String>,
    /// A five-field cron expression, evaluated in the tenant's time zone.
    pub schedule: String,
    pub retention: PlanRetention,
    pub bandwidth_limit: Option<BandwidthLimit>,
    /// Commands run before and after an image backup (to quiesce what writes to it).
    pub pre_hook: Option<String>,
    pub post_hook: Option<String>,
    pub enabled: bool,
    /// How often each machine restores the plan's latest snapshot to prove it can.
    pub drill: Option<DrillFrequency>,
    /// The machines that run it.
    pub machines: Vec<MachineId>,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: PlanId,
    pub spec: PlanSpec,
    pub created_ms: i64,
    pub updated_ms: i64,
}
