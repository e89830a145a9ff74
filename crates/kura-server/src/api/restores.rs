//! Restore jobs: a user asks a machine to restore a snapshot (`POST /api/v1/restores`),
//! follows it (`GET /api/v1/restores/{id}`, `GET /api/v1/restores`), and the machine's
//! agent daemon reports on it (`PATCH /api/v1/agent/restores/{id}`). The portal's
//! snapshot page uses the same operations.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kura_api::agent::{AgentRestore, ReportRestore, RestoreView};
use kura_service::model::{RestoreRecord, RestoreReport, RestoreStatus};
use kura_service::ops::restores::{self, RestoreRequest};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{Agent, User};
use crate::error::ApiError;

/// `POST /api/v1/restores`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRestoreRequest {
    /// The snapshot's full id (64 hex digits).
    pub snapshot_id: String,
    /// The machine that restores (any active machine of the tenant).
    pub machine_id: String,
    /// Absolute: a directory for a files snapshot, a file or device for an image.
    pub target: String,
    /// Paths inside a files snapshot; absent or empty restores everything.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Allow a non-empty target and replace what is in the way.
    #[serde(default)]
    pub overwrite: bool,
}

/// A job as the API shows it.
pub(crate) fn restore_view(job: RestoreRecord) -> RestoreView {
    RestoreView {
        id: job.id.as_str().to_owned(),
        snapshot_id: job.snapshot_id,
        machine_id: job.machine_id.as_str().to_owned(),
        snapshot_machine_id: job.snapshot_machine_id.as_str().to_owned(),
        target: job.target,
        paths: job.paths,
        overwrite: job.overwrite,
        status: job.status.as_str().to_owned(),
        requested_by: job.requested_by,
        queued: rfc3339(job.queued_ms),
        started: job.started_ms.map(rfc3339),
        finished: job.finished_ms.map(rfc3339),
        files: job.files,
        bytes: job.bytes,
        error: job.error,
    }
}

/// A job as the machine performs it.
pub(crate) fn agent_restore(job: RestoreRecord) -> AgentRestore {
    AgentRestore {
        id: job.id.as_str().to_owned(),
        snapshot_id: job.snapshot_id,
        target: job.target,
        paths: job.paths,
        overwrite: job.overwrite,
    }
}

/// Asks a machine to restore a snapshot: `202` with the queued job. The machine's agent
/// daemon performs it within its poll interval.
#[utoipa::path(post, path = "/api/v1/restores", tag = "restores",
    request_body = CreateRestoreRequest,
    responses((status = 202, body = RestoreView)))]
pub(super) async fn create(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<CreateRestoreRequest>,
) -> Result<(StatusCode, Json<RestoreView>), ApiError> {
    let job = restores::request(
        &state.service,
        &user,
        RestoreRequest {
            snapshot_id: request.snapshot_id,
            machine_id: request.machine_id,
            target: request.target,
            paths: request.paths,
            overwrite: request.overwrite,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(restore_view(job))))
}

/// One restore job.
#[utoipa::path(get, path = "/api/v1/restores/{id}", tag = "restores",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = RestoreView)))]
pub(super) async fn show(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<RestoreView>, ApiError> {
    Ok(Json(restore_view(
        restores::get(&state.service, &user, &id).await?,
    )))
}

/// `GET /api/v1/restores` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RestoreQuery {
    /// Only jobs of this snapshot (full id).
    snapshot: Option<String>,
}

/// The tenant's restore jobs, newest first (at most 200).
#[utoipa::path(get, path = "/api/v1/restores", tag = "restores", params(RestoreQuery),
    responses((status = 200, body = [RestoreView])))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<RestoreQuery>, QueryRejection>,
) -> Result<Json<Vec<RestoreView>>, ApiError> {
    let Query(q) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let jobs = restores::list(&state.service, &user, q.snapshot.as_deref()).await?;
    Ok(Json(jobs.into_iter().map(restore_view).collect()))
}

/// The machine reports on its restore job: `running` as it starts (and with progress),
/// then `succeeded` or `failed`.
#[utoipa::path(patch, path = "/api/v1/agent/restores/{id}", tag = "agents",
    request_body = ReportRestore,
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = RestoreView)))]
pub(super) async fn report(
    State(state): State<AppState>,
    agent: Agent,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReportRestore>,
) -> Result<Json<RestoreView>, ApiError> {
    let status = RestoreStatus::parse(&request.status).ok_or_else(|| {
        ApiError::invalid(format!(
            "status: {:?} is not running, succeeded or failed",
            request.status
        ))
    })?;
    let report = RestoreReport {
        status,
        files: request.files,
        bytes: request.bytes,
        error: request.error,
    };
    let job = restores::report(&state.service, &agent, &id, report).await?;
    Ok(Json(restore_view(job)))
}
