//! Agent registration: a one-time token from the portal or operator becomes a machine
//! record and the agent's own revocable credential; the protection plans a registered
//! machine runs, and its reports on each run; the restore jobs and drills it performs.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/agents/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Register {
    /// The one-time registration token.
    pub token: String,
    /// The machine's name as the tenant will see it.
    pub name: String,
}

/// Answer to [`Register`]. The credential is shown once; the server keeps only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub machine_id: String,
    pub tenant_id: String,
    pub credential: String,
}

/// `GET /api/v1/agent/plans`: the plans assigned to the calling machine, and the time
/// zone their schedules are in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentPlans {
    /// IANA name (`Asia/Tokyo`): the tenant's zone, which schedules are evaluated in.
    pub time_zone: String,
    pub plans: Vec<AgentPlan>,
    /// Restores waiting for this machine (oldest first).
    #[serde(default)]
    pub restores: Vec<AgentRestore>,
}

/// One plan as the machine runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentPlan {
    pub id: String,
    pub name: String,
    /// `files` or `image`.
    pub kind: String,
    pub sources: Vec<String>,
    pub excludes: Vec<String>,
    /// Five-field cron expression in [`AgentPlans::time_zone`].
    pub schedule: String,
    /// Upload limit in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_hook: Option<String>,
    /// A disabled plan is not run.
    pub enabled: bool,
    /// RFC 3339, UTC: the slot that waits for a run now (the latest one, when it has no
    /// run yet or was missed), to be started with `POST /api/v1/agent/runs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// RFC 3339, UTC: the next slot (absent when disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// The full id of the snapshot to drill now: a restore drill of the plan is due and
    /// the machine is quiet. Started with `POST /api/v1/agent/drills`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
}

/// `POST /api/v1/agent/runs`: the machine starts a run of one of its plans for a slot, or
/// records that it skipped the slot because the plan's previous run was still going.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    pub plan_id: String,
    /// RFC 3339: the slot, as [`AgentPlan::due`] gave it.
    pub scheduled: String,
    #[serde(default)]
    pub skipped: bool,
}

/// `PATCH /api/v1/agent/runs/{id}`: progress while `running`, then the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRun {
    /// `running`, `succeeded`, `partial` (saved, but some files could not be read) or
    /// `failed`.
    pub status: String,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes_read: u64,
    #[serde(default)]
    pub bytes_added: u64,
    /// The snapshot a `succeeded` or `partial` run saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Why the run failed, or what a partial run left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One run of a plan on a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub plan_id: String,
    /// The plan's name when the run was recorded.
    pub plan_name: String,
    pub machine_id: String,
    /// `running`, `succeeded`, `partial`, `failed`, `missed` or `skipped`.
    pub status: String,
    /// RFC 3339, UTC: the slot the run is for.
    pub scheduled: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A restore the machine is asked to perform (a restore job), in
/// [`AgentPlans::restores`]; performed with the same code as `kura restore`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentRestore {
    pub id: String,
    /// The full id of the snapshot (possibly another machine's, granted by the job).
    pub snapshot_id: String,
    /// A directory for a files snapshot; a file or device for an image snapshot.
    pub target: String,
    /// Paths inside a files snapshot; empty restores everything.
    pub paths: Vec<String>,
    /// Allow a non-empty target and replace what is in the way.
    pub overwrite: bool,
}

/// `PATCH /api/v1/agent/restores/{id}`: `running` as the machine starts (and with
/// progress), then `succeeded` or `failed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRestore {
    pub status: String,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
    /// Why it failed, or what could not be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A restore job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreView {
    pub id: String,
    pub snapshot_id: String,
    /// The machine that restores.
    pub machine_id: String,
    /// The machine whose snapshot it is.
    pub snapshot_machine_id: String,
    pub target: String,
    pub paths: Vec<String>,
    pub overwrite: bool,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Who asked for it.
    pub requested_by: String,
    /// RFC 3339, UTC.
    pub queued: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub files: u64,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/agent/drills`: the machine starts the restore drill its plan offered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDrill {
    pub plan_id: String,
    /// As [`AgentPlan::drill`] gave it.
    pub snapshot_id: String,
}

/// `PATCH /api/v1/agent/drills/{id}`: counts while `running`, then `passed`, `failed`
/// (something did not come back as backed up) or `abandoned` (the drill could not
/// finish for reasons that say nothing about the backup: the daemon stopped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportDrill {
    pub status: String,
    /// Files restored and checked (1 for an image).
    #[serde(default)]
    pub files: u64,
    /// Bytes restored and checked.
    #[serde(default)]
    pub bytes: u64,
    /// Files (or image ranges) that did not come back as the snapshot holds them.
    #[serde(default)]
    pub mismatches: u64,
    /// What failed: the first problems found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A restore drill: a machine restored a snapshot of its plan into a scratch directory
/// (or read an image through the restore path), checked every byte and deleted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrillView {
    pub id: String,
    pub plan_id: String,
    /// The plan's name when the drill ran.
    pub plan_name: String,
    pub machine_id: String,
    pub snapshot_id: String,
    /// `running`, `passed`, `failed` or `abandoned`.
    pub status: String,
    /// RFC 3339, UTC.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Seconds from start to end (or to the latest report while running).
    pub duration_s: f64,
    pub files: u64,
    pub bytes: u64,
    pub mismatches: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
