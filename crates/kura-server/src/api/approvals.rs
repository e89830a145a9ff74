//! The two-person rule, for operators: the requests waiting for a second operator-admin,
//! and approving (the action is carried out as asked) or rejecting them. The gated routes
//! (terminate, purge now, a contract change lowering the immutability period, deleting an
//! operator) answer `202 Accepted` with the request when it waits. Every rule is the
//! service's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kura_service::model::ApprovalRecord;
use kura_service::ops::approvals::{self, Gated};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{CallerInfo, Operator};
use crate::error::ApiError;

/// A destructive operator action waiting for (or decided by) a second operator-admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    pub id: String,
    /// `tenant.terminate`, `tenant.purge-now`, `tenant.immutability.lower` or `operator.delete`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// What it acts on, in words.
    pub target: String,
    /// What it will do, in words.
    pub summary: String,
    pub requested_by: String,
    /// RFC 3339, UTC.
    pub requested: String,
    /// Past this time a pending request has expired.
    pub expires: String,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    /// What carrying it out did: `done: …` or `failed: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl ApprovalView {
    pub fn at(approval: &ApprovalRecord, now_ms: i64) -> Self {
        ApprovalView {
            id: approval.id.to_string(),
            action: approval.action.as_str().to_owned(),
            tenant_id: approval.tenant_id.as_ref().map(ToString::to_string),
            target: approval.target.clone(),
            summary: approval.summary.clone(),
            requested_by: approval.requested_by.clone(),
            requested: rfc3339(approval.requested_ms),
            expires: rfc3339(approval.expires_ms),
            status: approval.status_at(now_ms).as_str().to_owned(),
            decided_by: approval.decided_by.clone(),
            decided: approval.decided_ms.map(rfc3339),
            outcome: approval.outcome.clone(),
        }
    }
}

/// The answer of a gated route: `done` when carried out, else `202` with the request.
pub(super) fn gated<T>(state: &AppState, answer: Gated<T>, done: impl FnOnce(T) -> Response) -> Response {
    match answer {
        Gated::Done(value) => done(value),
        Gated::AwaitingApproval(request) => (
            StatusCode::ACCEPTED,
            Json(ApprovalView::at(&request, state.service.now_ms())),
        )
            .into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/operator/approvals", tag = "approvals",
    responses((status = 200, body = Vec<ApprovalView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<ApprovalView>>, ApiError> {
    let now = state.service.now_ms();
    let all = approvals::list(&state.service, &operator).await?;
    Ok(Json(all.iter().map(|a| ApprovalView::at(a, now)).collect()))
}

#[utoipa::path(get, path = "/api/v1/operator/approvals/{id}", tag = "approvals",
    responses((status = 200, body = ApprovalView)))]
pub(super) async fn show(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let approval = approvals::get(&state.service, &operator, &id).await?;
    Ok(Json(ApprovalView::at(&approval, state.service.now_ms())))
}

/// Approves another operator's request and carries it out; `outcome` says what it did.
#[utoipa::path(post, path = "/api/v1/operator/approvals/{id}/approve", tag = "approvals",
    responses((status = 200, body = ApprovalView)))]
pub(super) async fn approve(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let approval = approvals::approve(&state.service, &operator, &caller, &id).await?;
    Ok(Json(ApprovalView::at(&approval, state.service.now_ms())))
}

/// Rejects a request (its requester may withdraw their own this way).
#[utoipa::path(post, path = "/api/v1/operator/approvals/{id}/reject", tag = "approvals",
    responses((status = 200, body = ApprovalView)))]
pub(super) async fn reject(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let approval = approvals::reject(&state.service, &operator, &caller, &id).await?;
    Ok(Json(ApprovalView::at(&approval, state.service.now_ms())))
}
