//! The tenant's machines for its own users (the portal's `/machines` does the same):
//! list, rename, revoke, and registration tokens for new machines.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kura_service::ops::machines;
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::types::{MachineView, RegistrationTokenView};
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// `PATCH /api/v1/machines/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMachineRequest {
    /// The name people see (1 to 255 characters).
    pub name: String,
}

/// The tenant's machines, oldest first, revoked ones included.
#[utoipa::path(get, path = "/api/v1/machines", tag = "machines",
    responses((status = 200, body = Vec<MachineView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<MachineView>>, ApiError> {
    let machines = machines::list(&state.service, &user).await?;
    Ok(Json(machines.iter().map(MachineView::from).collect()))
}

/// Renames a machine.
#[utoipa::path(patch, path = "/api/v1/machines/{id}", tag = "machines",
    request_body = UpdateMachineRequest,
    responses((status = 200, body = MachineView)))]
pub(super) async fn update(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateMachineRequest>,
) -> Result<Json<MachineView>, ApiError> {
    let machine = machines::rename(&state.service, &user, &id, &request.name).await?;
    Ok(Json(MachineView::from(&machine)))
}

/// Revokes a machine's credential at once; its snapshots stay.
#[utoipa::path(delete, path = "/api/v1/machines/{id}", tag = "machines",
    responses((status = 204, description = "the machine's credential no longer works")))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    machines::revoke(&state.service, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time registration token for a new machine (`kura register --token …`).
#[utoipa::path(post, path = "/api/v1/registration-tokens", tag = "machines",
    responses((status = 201, body = RegistrationTokenView)))]
pub(super) async fn issue_registration_token(
    State(state): State<AppState>,
    user: User,
) -> Result<(StatusCode, Json<RegistrationTokenView>), ApiError> {
    let token = machines::issue_registration_token(&state.service, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegistrationTokenView {
            registration_token: token.token,
            expires: rfc3339(token.expires_ms),
        }),
    ))
}
