//! Jobs on the wire: `GET /api/v1/jobs/{id}` (an agent following the run it asked for,
//! e.g. `POST /api/v1/vault/verify`, which answers `202` with the job) and the operators'
//! `GET/POST /api/v1/operator/jobs`.

use serde::{Deserialize, Serialize};

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// `verify`, `gc`, `expiry` or `mail`.
    pub kind: String,
    /// The tenant a run concerns; `None` for the service's own work.
    pub tenant_id: Option<String>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// `schedule`, `operator:NAME` or `agent:MACHINE`.
    pub requested_by: String,
    /// RFC 3339, UTC.
    pub queued: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// Runs begun, including ones cut off by a stopped server and taken over.
    pub attempts: u32,
    /// The server running it, or that ran it last (`server-PID-XXXXXXXX`).
    pub runner: Option<String>,
    /// What a running job last reported.
    pub progress: Option<String>,
    /// Why a failed run failed.
    pub error: Option<String>,
    /// What a succeeded run found: for `verify`, `{"report": …, "repair": … | null}`.
    pub result: Option<serde_json::Value>,
}

impl JobView {
    /// Whether the run has ended, well or not.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }
}

/// `POST /api/v1/operator/jobs`: run a job now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJob {
    pub kind: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
}
