//! Operator API (management listener only): tenants and their contracts, registration
//! tokens, machines. Every handler takes an [`Operator`]; routes about one tenant turn
//! the path id into a `ContractScope`, which reaches the contract but never customer data.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kura_service::model::TenantStatus;
use kura_service::ops::tenants;

use super::ApiJson;
use super::approvals::{ApprovalView, gated};
use super::types::{
    CreateTenantRequest, CreatedTenant, MachineView, RegistrationTokenView, TenantDetail, TenantView,
    TerminationView, UpdateTenantRequest, UserView, rfc3339,
};
use crate::app::AppState;
use crate::auth::{CallerInfo, Operator};
use crate::error::ApiError;

#[utoipa::path(post, path = "/api/v1/operator/tenants", tag = "tenants",
    request_body = CreateTenantRequest,
    responses((status = 201, body = CreatedTenant)))]
pub(super) async fn create_tenant(
    State(state): State<AppState>,
    operator: Operator,
    ApiJson(request): ApiJson<CreateTenantRequest>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let created = tenants::create(&state.service, &operator, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant_id: created.tenant.id.to_string(),
            service_code: created.tenant.service_code.clone(),
            admin_login: created.admin_login,
            admin_password: created.admin_password,
            registration_token: created.registration.token,
            registration_token_expires: rfc3339(created.registration.expires_ms),
            tenant: TenantView::from(&created.tenant),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/operator/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>)))]
pub(super) async fn list_tenants(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    let tenants = tenants::list(&state.service, &operator).await?;
    Ok(Json(tenants.iter().map(TenantView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/operator/tenants/{tenant_id}", tag = "tenants",
    responses((status = 200, body = TenantDetail)))]
pub(super) async fn show_tenant(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    let (scope, tenant) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let (users, machines) = tenants::detail(&state.service, &scope).await?;
    let termination = kura_service::ops::terminations::termination(&state.service, &scope).await?;
    Ok(Json(TenantDetail {
        tenant: TenantView::from(&tenant),
        users: users.iter().map(UserView::from).collect(),
        machines: machines.iter().map(MachineView::from).collect(),
        termination: termination.as_ref().map(TerminationView::from),
    }))
}

/// Changes a contract; only the fields given change. Lowering `immutable_days` waits for
/// a second operator-admin while the two-person rule holds: `202` with the request.
#[utoipa::path(patch, path = "/api/v1/operator/tenants/{tenant_id}", tag = "tenants",
    request_body = UpdateTenantRequest,
    responses((status = 200, body = TenantView), (status = 202, body = ApprovalView)))]
pub(super) async fn update_tenant(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    Path(tenant_id): Path<String>,
    ApiJson(request): ApiJson<UpdateTenantRequest>,
) -> Result<Response, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let answer = tenants::update(&state.service, &operator, &caller, &scope, request).await?;
    Ok(gated(&state, answer, |tenant| {
        tracing::info!(tenant_id = %tenant.id, operator = operator.name(), "tenant updated");
        Json(TenantView::from(&tenant)).into_response()
    }))
}

#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/suspend", tag = "tenants",
    responses((status = 200, body = TenantView)))]
pub(super) async fn suspend_tenant(
    state: State<AppState>,
    operator: Operator,
    tenant_id: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(state, operator, tenant_id, TenantStatus::Suspended).await
}

#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/resume", tag = "tenants",
    responses((status = 200, body = TenantView)))]
pub(super) async fn resume_tenant(
    state: State<AppState>,
    operator: Operator,
    tenant_id: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(state, operator, tenant_id, TenantStatus::Active).await
}

async fn set_status(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant_id): Path<String>,
    status: TenantStatus,
) -> Result<Json<TenantView>, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let tenant = tenants::set_status(&state.service, &scope, status).await?;
    tracing::info!(tenant_id = %tenant.id, status = status.as_str(), operator = operator.name(), "tenant status changed");
    Ok(Json(TenantView::from(&tenant)))
}

#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/registration-tokens", tag = "tenants",
    responses((status = 201, body = RegistrationTokenView)))]
pub(super) async fn issue_registration_token(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant_id): Path<String>,
) -> Result<(StatusCode, Json<RegistrationTokenView>), ApiError> {
    let (scope, tenant) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let token = tenants::issue_registration_token(&state.service, &scope, &tenant).await?;
    tracing::info!(tenant_id = %tenant.id, operator = operator.name(), "registration token issued");
    Ok((
        StatusCode::CREATED,
        Json(RegistrationTokenView {
            registration_token: token.token,
            expires: rfc3339(token.expires_ms),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/operator/tenants/{tenant_id}/machines", tag = "tenants",
    responses((status = 200, body = Vec<MachineView>)))]
pub(super) async fn list_machines(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<MachineView>>, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    let machines = tenants::machines(&state.service, &scope).await?;
    Ok(Json(machines.iter().map(MachineView::from).collect()))
}

/// Revokes a machine's credential at once (e.g. a compromised host); the machine must
/// register again with a new token.
#[utoipa::path(post, path = "/api/v1/operator/tenants/{tenant_id}/machines/{machine_id}/revoke", tag = "tenants",
    responses((status = 204, description = "the machine's credential no longer works")))]
pub(super) async fn revoke_machine(
    State(state): State<AppState>,
    operator: Operator,
    Path((tenant_id, machine_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (scope, _) = tenants::contract(&state.service, &operator, &tenant_id).await?;
    tenants::revoke_machine(&state.service, &scope, &machine_id).await?;
    tracing::info!(tenant_id = %scope.tenant_id(), machine_id, operator = operator.name(), "machine revoked");
    Ok(StatusCode::NO_CONTENT)
}
