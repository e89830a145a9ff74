//! Password reissue by mail (the rules are `kura_service::ops::resets`): "forgot
//! password" answers the same whether or not the login ID exists, and does the lookup
//! and the sending after answering, so neither its answer nor its timing tells; without
//! a mail server it says so at once (`503`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use kura_api::ErrorBody;
use kura_service::authz;
use kura_service::ops::resets;

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{CallerInfo, User};
use crate::error::ApiError;

/// `POST /api/v1/password/forgot`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub login: String,
}

/// `POST /api/v1/password/reset`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The `token` of the link in the mail.
    pub token: String,
    pub new_password: String,
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPassword { .. }")
    }
}

/// Answer to a reset request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResetRequested {
    pub message: String,
}

/// Mails a reset link if the login ID names an active user with an address; answers the
/// same in every case.
#[utoipa::path(post, path = "/api/v1/password/forgot", tag = "accounts", request_body = ForgotPassword,
    responses((status = 202, body = ResetRequested), (status = 503, description = "the service has no mail server", body = ErrorBody)))]
pub(super) async fn forgot(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    ApiJson(request): ApiJson<ForgotPassword>,
) -> Result<(StatusCode, Json<ResetRequested>), ApiError> {
    resets::require_mail(&state.service)?;
    tokio::spawn(async move {
        if let Err(err) = resets::forgot(&state.service, &caller, &request.login).await {
            tracing::warn!(error = %err.message, "password reset request failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            message: "if this login ID exists and has an email address, a reset link valid for 30 minutes \
                      has been sent to it"
                .to_owned(),
        }),
    ))
}

/// Sets a new password with a reset link.
#[utoipa::path(post, path = "/api/v1/password/reset", tag = "accounts", request_body = ResetPassword,
    responses((status = 204, description = "the password is set")))]
pub(super) async fn reset(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    ApiJson(request): ApiJson<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    authz::redeem_reset(&state.service, &caller, &request.token, request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user admin forces a reset: a link goes to the user, then the old password, every
/// session and every API token of the user stop working.
#[utoipa::path(post, path = "/api/v1/users/{id}/reset-password", tag = "users",
    responses((status = 202, body = ResetRequested)))]
pub(super) async fn force_reset(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ResetRequested>), ApiError> {
    let email = resets::force(&state.service, &user, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            message: format!("a reset link valid for 30 minutes was sent to {email}"),
        }),
    ))
}
