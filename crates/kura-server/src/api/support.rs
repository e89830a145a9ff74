//! Support access with consent: a tenant admin grants operators a time-limited look at
//! the tenant's data (at most 72 hours) and can withdraw it; the operator route that
//! reads customer data takes its scope from [`TenantScope::for_support`], so without a
//! live grant it is refused. Grants, withdrawals and every operator call about the
//! tenant are in the tenant's event log.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use super::types::rfc3339;
use crate::app::AppState;
use crate::auth::{OperatorPrincipal, UserPrincipal};
use crate::db::TenantRecord;
use crate::error::ApiError;
use crate::tenancy::{TenantId, TenantScope};

/// The longest grant.
pub const MAX_SUPPORT_HOURS: u32 = 72;

/// `PUT /api/v1/tenant/support-access`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportGrant {
    /// 1 to 72.
    pub hours: u32,
}

/// Whether support access is granted, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportAccessView {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What an operator sees of a tenant's vault under support access.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupportSnapshots {
    pub snapshots: Vec<SupportSnapshot>,
    pub usage: kura_store::Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportSnapshot {
    pub id: String,
    pub damaged: bool,
}

fn view(tenant: &TenantRecord, now_ms: i64) -> SupportAccessView {
    let until = tenant.support_until_ms.filter(|until| now_ms < *until);
    SupportAccessView {
        active: until.is_some(),
        until: until.map(rfc3339),
    }
}

/// The tenant's support access.
pub(super) async fn show(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<SupportAccessView>, ApiError> {
    let tenant = super::current_tenant(&state, &user.scope).await?;
    Ok(Json(view(&tenant, state.clock.now_ms())))
}

/// Grants support access for `hours` from now (replacing any earlier grant).
pub(super) async fn grant(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<SupportGrant>,
) -> Result<Json<SupportAccessView>, ApiError> {
    if !(1..=MAX_SUPPORT_HOURS).contains(&request.hours) {
        return Err(ApiError::invalid(format!(
            "hours must be between 1 and {MAX_SUPPORT_HOURS}"
        )));
    }
    set(state, user, Some(request.hours)).await
}

/// Withdraws support access at once.
pub(super) async fn revoke(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<SupportAccessView>, ApiError> {
    set(state, user, None).await
}

async fn set(
    state: AppState,
    user: UserPrincipal,
    hours: Option<u32>,
) -> Result<Json<SupportAccessView>, ApiError> {
    let now = state.clock.now_ms();
    let until = hours.map(|hours| now.saturating_add(i64::from(hours) * 3_600_000));
    let tenant = state
        .db
        .set_support_access(&user.scope, until)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant no longer exists"))?;
    let (action, result) = match until {
        Some(until) => ("support.grant", format!("ok: until {}", rfc3339(until))),
        None => ("support.revoke", "ok".to_owned()),
    };
    user.audit
        .record(&state, &user.scope, action, "support access", &result)
        .await?;
    Ok(Json(view(&tenant, now)))
}

/// `GET /api/v1/operator/tenants/{id}/snapshots`: the tenant's snapshots and usage, only
/// under a live support grant.
pub(super) async fn operator_snapshots(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
) -> Result<Json<SupportSnapshots>, ApiError> {
    let not_found = || ApiError::not_found(format!("no tenant with id {tenant_id:?}"));
    let id = TenantId::parse(&tenant_id).ok_or_else(not_found)?;
    let contract = TenantScope::for_operator(&operator, id);
    let tenant = state.db.tenant(&contract).await?.ok_or_else(not_found)?;
    let scope = TenantScope::for_support(&operator, &tenant, state.clock.now_ms()).ok_or_else(|| {
        ApiError::forbidden(
            "this tenant has not granted support access (or the grant has expired); \
             ask a tenant admin to grant it (PUT /api/v1/tenant/support-access)",
        )
    })?;
    let Some(tv) = state
        .vaults
        .get(&scope)
        .await
        .map_err(super::vault::store_error)?
    else {
        return Ok(Json(SupportSnapshots {
            snapshots: Vec::new(),
            usage: kura_store::Usage::default(),
        }));
    };
    let mut snapshots = Vec::new();
    for record in tv.vault.snapshots().await.map_err(super::vault::store_error)? {
        snapshots.push(SupportSnapshot {
            damaged: tv
                .vault
                .is_damaged(&record.id)
                .await
                .map_err(super::vault::store_error)?,
            id: record.id.to_hex(),
        });
    }
    let usage = tv.vault.usage().await.map_err(super::vault::store_error)?;
    Ok(Json(SupportSnapshots { snapshots, usage }))
}
