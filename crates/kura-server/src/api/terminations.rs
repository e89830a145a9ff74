//! Termination and erasure, for operators: terminate a tenant (its purge queued),
//! withdraw a termination before the purge starts, and the signed deletion records purges
//! leave, with the public key that checks them. Every rule and event is the service's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use kura_service::model::{SignedDeletionRecord, TerminationRecord};
use kura_service::ops::tenants;
use kura_service::ops::terminations::{self, TerminateRequest};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::approvals::{ApprovalView, gated};
use super::types::TenantView;
use crate::app::AppState;
use crate::auth::{CallerInfo, Operator};
use crate::error::ApiError;

/// A tenant's termination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TerminationView {
    /// RFC 3339, UTC.
    pub terminated: String,
    pub terminated_by: String,
    /// When the purge runs; until it starts, the termination can be withdrawn.
    pub purge_due: String,
    /// The purge job (`GET /api/v1/operator/jobs/{id}`).
    pub purge_job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<String>,
}

impl From<&TerminationRecord> for TerminationView {
    fn from(t: &TerminationRecord) -> Self {
        TerminationView {
            terminated: rfc3339(t.terminated_ms),
            terminated_by: t.terminated_by.clone(),
            purge_due: rfc3339(t.purge_due_ms),
            purge_job: t.job_id.clone(),
            purge_started: t.purge_started_ms.map(rfc3339),
            purged: t.purged_ms.map(rfc3339),
        }
    }
}

/// `POST …/terminate`: the tenant as it is now and its termination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TerminatedTenant {
    pub tenant: TenantView,
    pub termination: TerminationView,
}

/// The key that checks deletion records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletionKeyView {
    /// `ed25519`.
    pub algorithm: String,
    /// Base64 (32 bytes); `kura-server deletion public-key` prints the same.
    pub public_key: String,
}

/// A deletion record in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletionSummaryView {
    pub id: String,
    pub tenant_id: String,
    pub service_code: String,
    /// When the purge ended (RFC 3339, UTC).
    pub created: String,
}

/// Terminates a contract; while the two-person rule holds it waits for a second
/// operator-admin: `202` with the request.
#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/terminate", tag = "tenants",
    request_body = TerminateRequest,
    responses((status = 200, body = TerminatedTenant), (status = 202, body = ApprovalView)))]
pub(super) async fn terminate(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(tenant_id): Path<String>,
    ApiJson(request): ApiJson<TerminateRequest>,
) -> Result<Response, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let answer = terminations::terminate(&state.service, &operator, &caller, &scope, &request).await?;
    Ok(gated(&state, answer, |(tenant, termination)| {
        Json(TerminatedTenant {
            tenant: TenantView::from(&tenant),
            termination: TerminationView::from(&termination),
        })
        .into_response()
    }))
}

/// Has a terminated tenant's purge run now rather than when its grace period ends; while
/// the two-person rule holds it waits for a second operator-admin: `202` with the request.
#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/purge-now", tag = "tenants",
    responses((status = 200, body = TenantView), (status = 202, body = ApprovalView)))]
pub(super) async fn purge_now(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(tenant_id): Path<String>,
) -> Result<Response, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let answer = terminations::purge_now(&state.service, &operator, &caller, &scope).await?;
    Ok(gated(&state, answer, |tenant| {
        Json(TenantView::from(&tenant)).into_response()
    }))
}

#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/cancel-termination", tag = "tenants",
    responses((status = 200, body = TenantView)))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let tenant = terminations::cancel(&state.service, &operator, &caller, &scope).await?;
    Ok(Json(TenantView::from(&tenant)))
}

#[utoipa::path(get, path = "/api/v1/operator/deletion-key", tag = "deletions",
    responses((status = 200, body = DeletionKeyView)))]
pub(super) async fn key(State(state): State<AppState>, _operator: Operator) -> Json<DeletionKeyView> {
    Json(DeletionKeyView {
        algorithm: "ed25519".into(),
        public_key: terminations::public_key(&state.service),
    })
}

#[utoipa::path(get, path = "/api/v1/operator/deletions", tag = "deletions",
    responses((status = 200, body = Vec<DeletionSummaryView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<DeletionSummaryView>>, ApiError> {
    let records = terminations::deletions(&state.service, &operator).await?;
    Ok(Json(
        records
            .iter()
            .map(|r| DeletionSummaryView {
                id: r.id.to_string(),
                tenant_id: r.tenant_id.to_string(),
                service_code: r.service_code.clone(),
                created: rfc3339(r.created_ms),
            })
            .collect(),
    ))
}

/// The signed record exactly as the purge stored it, to keep and check offline
/// (`kura-server deletion verify FILE`).
#[utoipa::path(get, path = "/api/v1/operator/deletions/{id}", tag = "deletions",
    responses((status = 200, body = SignedDeletionRecord)))]
pub(super) async fn show(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = terminations::deletion(&state.service, &operator, &id).await?;
    Ok(([(CONTENT_TYPE, "application/json")], record).into_response())
}
