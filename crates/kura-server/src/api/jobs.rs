//! Jobs: an agent follows the runs it asked for (`GET /api/v1/jobs/{id}`); operators list
//! runs and start one now (`/api/v1/operator/jobs`). The rules are
//! `kura_service::ops::jobs`'.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kura_api::jobs::{JobView, RunJob};
use kura_service::model::JobRecord;
use kura_service::ops::jobs;
use kura_service::rfc3339;
use serde::Deserialize;

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{Agent, Operator};
use crate::error::ApiError;

/// A run as the API shows it.
pub fn view(job: &JobRecord) -> JobView {
    JobView {
        id: job.id.clone(),
        kind: job.kind.as_str().to_owned(),
        tenant_id: job.tenant_id.as_ref().map(ToString::to_string),
        status: job.status.as_str().to_owned(),
        requested_by: job.requested_by.clone(),
        queued: rfc3339(job.queued_ms),
        started: job.started_ms.map(rfc3339),
        finished: job.finished_ms.map(rfc3339),
        attempts: job.attempts,
        runner: job.lease_owner.clone(),
        progress: job.progress.clone(),
        error: job.error.clone(),
        result: job
            .result
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok()),
    }
}

/// `GET /api/v1/jobs/{id}`: a run the agent asked for.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "vault",
    responses((status = 200, body = JobView)))]
pub(super) async fn agent_job(
    State(state): State<AppState>,
    agent: Agent,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(view(&jobs::agent_job(&state.service, &agent, &id).await?)))
}

/// The filter of `GET /api/v1/operator/jobs`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct JobsQuery {
    kind: Option<String>,
    status: Option<String>,
    tenant: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/operator/jobs?kind=&status=&tenant=&limit=`: runs, newest first.
#[utoipa::path(get, path = "/api/v1/operator/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = Vec<JobView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    operator: Operator,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))?;
    let filter = jobs::filter(
        query.kind.as_deref(),
        query.status.as_deref(),
        query.tenant.as_deref(),
        query.limit,
    )?;
    let runs = jobs::list(&state.service, &operator, &filter).await?;
    Ok(Json(runs.iter().map(view).collect()))
}

/// `GET /api/v1/operator/jobs/{id}`.
#[utoipa::path(get, path = "/api/v1/operator/jobs/{id}", tag = "jobs",
    responses((status = 200, body = JobView)))]
pub(super) async fn get(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(view(&jobs::get(&state.service, &operator, &id).await?)))
}

/// `POST /api/v1/operator/jobs`: queue a run now; answers `202` with it.
#[utoipa::path(post, path = "/api/v1/operator/jobs", tag = "jobs", request_body = RunJob,
    responses((status = 202, description = "the queued job", body = JobView)))]
pub(super) async fn run(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(request): ApiJson<RunJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = jobs::run_now(
        &state.service,
        &operator,
        &request.kind,
        request.tenant_id.as_deref(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view(&job))))
}
