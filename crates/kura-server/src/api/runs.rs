//! The history of the tenant's plan runs: `GET /api/v1/runs`, filtered by machine, plan,
//! status and time. The portal's plan and machine pages read the same operation.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use kura_api::agent::RunView;
use kura_service::ids::{MachineId, PlanId};
use kura_service::model::{RunFilter, RunRecord, RunStatus};
use kura_service::ops::runs;
use kura_service::rfc3339;
use serde::Deserialize;
use utoipa::IntoParams;

use super::parse_time;
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// A run as the API shows it.
pub(super) fn run_view(run: RunRecord) -> RunView {
    RunView {
        id: run.id.as_str().to_owned(),
        plan_id: run.plan_id.as_str().to_owned(),
        plan_name: run.plan_name,
        machine_id: run.machine_id.as_str().to_owned(),
        status: run.status.as_str().to_owned(),
        scheduled: rfc3339(run.scheduled_ms),
        started: run.started_ms.map(rfc3339),
        finished: run.finished_ms.map(rfc3339),
        files: run.counts.files,
        bytes_read: run.counts.bytes_read,
        bytes_added: run.counts.bytes_added,
        snapshot_id: run.snapshot_id,
        error: run.error,
    }
}

/// `GET /api/v1/runs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only this machine's runs.
    machine: Option<String>,
    /// Only this plan's runs.
    plan: Option<String>,
    /// Only runs in this state: `running`, `succeeded`, `partial`, `failed`, `missed` or
    /// `skipped`.
    status: Option<String>,
    /// RFC 3339: runs scheduled at or after this time.
    from: Option<String>,
    /// RFC 3339: runs scheduled before this time.
    to: Option<String>,
    /// At most this many (default and most: 1000), newest first.
    limit: Option<u32>,
}

/// The tenant's plan runs, newest slot first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "plans", params(RunQuery),
    responses((status = 200, body = [RunView])))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let Query(q) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let filter = RunFilter {
        machine: super::id_filter("machine", q.machine, MachineId::parse)?,
        plan: super::id_filter("plan", q.plan, PlanId::parse)?,
        status: q
            .status
            .map(|s| {
                RunStatus::parse(&s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "status: {s:?} is not running, succeeded, partial, failed, missed or skipped"
                    ))
                })
            })
            .transpose()?,
        from_ms: parse_time("from", q.from.as_deref())?,
        to_ms: parse_time("to", q.to.as_deref())?,
        limit: q.limit.unwrap_or(0),
    };
    let found = runs::list(&state.service, &user, filter).await?;
    Ok(Json(found.into_iter().map(run_view).collect()))
}
