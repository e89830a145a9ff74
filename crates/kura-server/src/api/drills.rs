//! Restore drills: the tenant reads them (`GET /api/v1/drills`); the machine's agent
//! daemon starts the drill its plans offer (`POST /api/v1/agent/drills`) and reports on
//! it (`PATCH /api/v1/agent/drills/{id}`). The portal's drills page reads the same
//! operation.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kura_api::agent::{DrillView, ReportDrill, StartDrill};
use kura_service::ids::{MachineId, PlanId};
use kura_service::model::{DrillCounts, DrillFilter, DrillRecord, DrillReport, DrillStatus};
use kura_service::ops::drills;
use kura_service::rfc3339;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{Agent, User};
use crate::error::ApiError;

/// A drill as the API shows it.
pub(crate) fn drill_view(drill: DrillRecord) -> DrillView {
    let ended = drill.finished_ms.unwrap_or(drill.updated_ms);
    DrillView {
        id: drill.id.as_str().to_owned(),
        plan_id: drill.plan_id.as_str().to_owned(),
        plan_name: drill.plan_name,
        machine_id: drill.machine_id.as_str().to_owned(),
        snapshot_id: drill.snapshot_id,
        status: drill.status.as_str().to_owned(),
        started: rfc3339(drill.started_ms),
        finished: drill.finished_ms.map(rfc3339),
        duration_s: (ended - drill.started_ms).max(0) as f64 / 1000.0,
        files: drill.counts.files,
        bytes: drill.counts.bytes,
        mismatches: drill.counts.mismatches,
        error: drill.error,
    }
}

fn parse_status(text: &str) -> Result<DrillStatus, ApiError> {
    DrillStatus::parse(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "status: {text:?} is not running, passed, failed or abandoned"
        ))
    })
}

/// `GET /api/v1/drills` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DrillQuery {
    /// Only drills of this plan.
    plan: Option<String>,
    /// Only drills on this machine.
    machine: Option<String>,
    /// `running`, `passed`, `failed` or `abandoned`.
    status: Option<String>,
    /// At most this many (default and most: 500).
    limit: Option<u32>,
}

/// The tenant's restore drills, the latest first.
#[utoipa::path(get, path = "/api/v1/drills", tag = "plans", params(DrillQuery),
    responses((status = 200, body = [DrillView])))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<DrillQuery>, QueryRejection>,
) -> Result<Json<Vec<DrillView>>, ApiError> {
    let Query(q) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let filter = DrillFilter {
        plan: super::id_filter("plan", q.plan, PlanId::parse)?,
        machine: super::id_filter("machine", q.machine, MachineId::parse)?,
        status: q.status.as_deref().map(parse_status).transpose()?,
        limit: q.limit.unwrap_or(0),
    };
    let found = drills::list(&state.service, &user, filter).await?;
    Ok(Json(found.into_iter().map(drill_view).collect()))
}

/// The machine starts the restore drill one of its plans offers (`drill` in
/// `GET /api/v1/agent/plans`).
#[utoipa::path(post, path = "/api/v1/agent/drills", tag = "agents",
    request_body = StartDrill,
    responses((status = 201, body = DrillView)))]
pub(super) async fn start(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<StartDrill>,
) -> Result<(StatusCode, Json<DrillView>), ApiError> {
    let drill = drills::start(&state.service, &agent, &request.plan_id, &request.snapshot_id).await?;
    Ok((StatusCode::CREATED, Json(drill_view(drill))))
}

/// The machine reports on its drill: counts while running, then the outcome.
#[utoipa::path(patch, path = "/api/v1/agent/drills/{id}", tag = "agents",
    request_body = ReportDrill,
    params(("id" = String, Path, description = "The drill's id")),
    responses((status = 200, body = DrillView)))]
pub(super) async fn report(
    State(state): State<AppState>,
    agent: Agent,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReportDrill>,
) -> Result<Json<DrillView>, ApiError> {
    let report = DrillReport {
        status: parse_status(&request.status)?,
        counts: DrillCounts {
            files: request.files,
            bytes: request.bytes,
            mismatches: request.mismatches,
        },
        error: request.error,
    };
    let drill = drills::report(&state.service, &agent, &id, report).await?;
    Ok(Json(drill_view(drill)))
}
