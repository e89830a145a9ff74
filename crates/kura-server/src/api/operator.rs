//! Operator API (management listener only): tenants and their contracts, registration
//! tokens, machines. Every handler takes an [`OperatorPrincipal`]; routes about one tenant
//! turn the path id into a [`TenantScope`] with it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::ApiJson;
use super::types::{
    CreateTenantRequest, CreatedTenant, MachineView, RegistrationTokenView, TenantDetail, TenantView,
    UpdateTenantRequest, UserView,
};
use crate::app::AppState;
use crate::auth::OperatorPrincipal;
use crate::db::{TenantRecord, TenantStatus};
use crate::error::ApiError;
use crate::tenancy::{MachineId, TenantId, TenantScope};
use crate::tenants::{self, now_ms};

/// The scope of the tenant named in the path; 404 if there is none.
async fn scoped_tenant(
    state: &AppState,
    operator: &OperatorPrincipal,
    tenant_id: &str,
) -> Result<(TenantScope, TenantRecord), ApiError> {
    let not_found = || ApiError::not_found(format!("no tenant with id {tenant_id:?}"));
    let id = TenantId::parse(tenant_id).ok_or_else(not_found)?;
    let scope = TenantScope::for_operator(operator, id);
    let tenant = state.db.tenant(&scope).await?.ok_or_else(not_found)?;
    Ok((scope, tenant))
}

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    ApiJson(request): ApiJson<CreateTenantRequest>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let created = tenants::create_tenant(&state, &operator, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn list_tenants(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    let tenants = state.db.list_tenants(&operator).await?;
    Ok(Json(tenants.iter().map(TenantView::from).collect()))
}

pub(super) async fn show_tenant(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    let (scope, tenant) = scoped_tenant(&state, &operator, &tenant_id).await?;
    let users = state.db.tenant_users(&scope).await?;
    let machines = state.db.machines(&scope).await?;
    Ok(Json(TenantDetail {
        tenant: TenantView::from(&tenant),
        users: users.iter().map(UserView::from).collect(),
        machines: machines.iter().map(MachineView::from).collect(),
    }))
}

pub(super) async fn update_tenant(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
    ApiJson(request): ApiJson<UpdateTenantRequest>,
) -> Result<Json<TenantView>, ApiError> {
    let (scope, _) = scoped_tenant(&state, &operator, &tenant_id).await?;
    let update = tenants::tenant_update(request)?;
    let tenant = state
        .db
        .update_tenant(&scope, &update)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant with id {tenant_id:?}")))?;
    tracing::info!(tenant_id = %tenant.id, operator = operator.token_name(), "tenant updated");
    Ok(Json(TenantView::from(&tenant)))
}

pub(super) async fn suspend_tenant(
    state: State<AppState>,
    operator: OperatorPrincipal,
    tenant_id: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(state, operator, tenant_id, TenantStatus::Suspended).await
}

pub(super) async fn resume_tenant(
    state: State<AppState>,
    operator: OperatorPrincipal,
    tenant_id: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(state, operator, tenant_id, TenantStatus::Active).await
}

async fn set_status(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
    status: TenantStatus,
) -> Result<Json<TenantView>, ApiError> {
    let (scope, tenant) = scoped_tenant(&state, &operator, &tenant_id).await?;
    if tenant.status == TenantStatus::Terminated {
        return Err(ApiError::conflict(
            "this tenant has been terminated; its status cannot change",
        ));
    }
    let tenant = state
        .db
        .set_tenant_status(&scope, status)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant with id {tenant_id:?}")))?;
    tracing::info!(
        tenant_id = %tenant.id,
        status = status.as_str(),
        operator = operator.token_name(),
        "tenant status changed"
    );
    Ok(Json(TenantView::from(&tenant)))
}

pub(super) async fn issue_registration_token(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
) -> Result<(StatusCode, Json<RegistrationTokenView>), ApiError> {
    let (scope, tenant) = scoped_tenant(&state, &operator, &tenant_id).await?;
    crate::auth::refuse_inactive_tenant(tenant.status)?;
    let token =
        tenants::issue_registration_token(state.db.as_ref(), &scope, state.config.registration_token_ttl)
            .await?;
    tracing::info!(tenant_id = %tenant.id, operator = operator.token_name(), "registration token issued");
    Ok((StatusCode::CREATED, Json(token)))
}

pub(super) async fn list_machines(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<MachineView>>, ApiError> {
    let (scope, _) = scoped_tenant(&state, &operator, &tenant_id).await?;
    let machines = state.db.machines(&scope).await?;
    Ok(Json(machines.iter().map(MachineView::from).collect()))
}

/// Revokes a machine's credential at once (e.g. a compromised host); the machine must
/// register again with a new token.
pub(super) async fn revoke_machine(
    State(state): State<AppState>,
    operator: OperatorPrincipal,
    Path((tenant_id, machine_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (scope, _) = scoped_tenant(&state, &operator, &tenant_id).await?;
    let not_found =
        || ApiError::not_found(format!("no active machine with id {machine_id:?} in this tenant"));
    let machine = MachineId::parse(&machine_id).ok_or_else(not_found)?;
    if !state.db.revoke_machine(&scope, &machine, now_ms()).await? {
        return Err(not_found());
    }
    tracing::info!(tenant_id = %scope.tenant_id(), machine_id = %machine, operator = operator.token_name(), "machine revoked");
    Ok(StatusCode::NO_CONTENT)
}
