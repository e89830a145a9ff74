//! Support access with consent: a tenant admin grants operators a time-limited look at
//! the tenant's data (at most 72 hours) and can withdraw it; the operator route that
//! reads customer data takes its scope from `authz::support_scope`, so without a live
//! grant it is refused. Grants, withdrawals and every operator call about the tenant are
//! in the tenant's event log.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use kura_service::model::TenantRecord;
use kura_service::ops::{support, tenants};

use super::ApiJson;
use super::types::rfc3339;
use crate::app::AppState;
use crate::auth::{Operator, User};
use crate::error::ApiError;

/// `PUT /api/v1/tenant/support-access`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportGrant {
    /// 1 to 72.
    pub hours: u32,
}

/// Whether support access is granted, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupportAccessView {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What an operator sees of a tenant's vault under support access.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupportSnapshots {
    pub snapshots: Vec<SupportSnapshot>,
    #[schema(value_type = super::openapi::UsageSchema)]
    pub usage: kura_store::Usage,
}

/// A snapshot's public facts (never its file names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupportSnapshot {
    pub id: String,
    /// When the backup began (RFC 3339, UTC).
    pub time: String,
    /// The machine that made it, when the service knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub source: String,
    /// `files` or `image`.
    pub kind: String,
    /// Logical bytes of its files or image.
    pub bytes: u64,
    pub files: u64,
    /// It references data the vault holds damaged or no longer holds.
    pub damaged: bool,
}

impl From<support::SupportedSnapshot> for SupportSnapshot {
    fn from(s: support::SupportedSnapshot) -> Self {
        SupportSnapshot {
            id: s.id,
            time: rfc3339(s.time_ns.div_euclid(1_000_000)),
            machine: s.machine,
            source: s.source,
            kind: s.kind.to_string(),
            bytes: s.bytes,
            files: s.files,
            damaged: s.damaged,
        }
    }
}

fn view(tenant: &TenantRecord, now_ms: i64) -> SupportAccessView {
    let until = support::active_until(tenant, now_ms);
    SupportAccessView {
        active: until.is_some(),
        until: until.map(rfc3339),
    }
}

/// The tenant's support access.
#[utoipa::path(get, path = "/api/v1/tenant/support-access", tag = "security",
    responses((status = 200, body = SupportAccessView)))]
pub(super) async fn show(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<SupportAccessView>, ApiError> {
    let tenant = tenants::current(&state.service, &user.scope).await?;
    Ok(Json(view(&tenant, state.clock().now_ms())))
}

/// Grants support access for `hours` from now (replacing any earlier grant).
#[utoipa::path(put, path = "/api/v1/tenant/support-access", tag = "security",
    request_body = SupportGrant,
    responses((status = 200, body = SupportAccessView)))]
pub(super) async fn grant(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<SupportGrant>,
) -> Result<Json<SupportAccessView>, ApiError> {
    let tenant = support::set(&state.service, &user, Some(request.hours)).await?;
    Ok(Json(view(&tenant, state.clock().now_ms())))
}

/// Withdraws support access at once.
#[utoipa::path(delete, path = "/api/v1/tenant/support-access", tag = "security",
    responses((status = 200, body = SupportAccessView)))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<SupportAccessView>, ApiError> {
    let tenant = support::set(&state.service, &user, None).await?;
    Ok(Json(view(&tenant, state.clock().now_ms())))
}

/// `GET /api/v1/operator/tenants/{id}/snapshots`: the tenant's snapshots (newest first,
/// with time, machine, source, kind and size) and usage, only under a live support grant.
#[utoipa::path(get, path = "/api/v1/operator/tenants/{tenant_id}/snapshots", tag = "tenants",
    responses((status = 200, body = SupportSnapshots)))]
pub(super) async fn operator_snapshots(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant_id): Path<String>,
) -> Result<Json<SupportSnapshots>, ApiError> {
    let (snapshots, usage) = support::snapshots(&state.service, &operator, &tenant_id).await?;
    Ok(Json(SupportSnapshots {
        snapshots: snapshots.into_iter().map(SupportSnapshot::from).collect(),
        usage,
    }))
}
