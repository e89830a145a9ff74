//! Agent registration: a one-time token from the portal or operator becomes a machine
//! record and the agent's own revocable credential; and the protection plans a
//! registered machine runs.

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
}
