//! TOTP routes (customer listener): a user enrols (a secret, then a first code, which
//! yields recovery codes) or turns TOTP off; a tenant admin sets the policy that makes it
//! mandatory.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kura_service::ops::totp;

use serde::Deserialize;

use super::types::{RecoveryCodes, TotpCode, TotpEnrolment, TotpPolicyBody};
use super::{ApiBytes, ApiJson};
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// Starts enrolment: a new secret, shown once, active after `confirm`.
#[utoipa::path(post, path = "/api/v1/totp/enroll", tag = "accounts",
    responses((status = 200, body = TotpEnrolment)))]
pub(super) async fn enroll(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let enrolment = totp::enroll(&state.service, &user).await?;
    Ok(Json(TotpEnrolment {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

/// Finishes enrolment with a current code; answers the recovery codes, shown once.
#[utoipa::path(post, path = "/api/v1/totp/confirm", tag = "accounts",
    request_body = TotpCode,
    responses((status = 200, body = RecoveryCodes)))]
pub(super) async fn confirm(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<TotpCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let recovery_codes = totp::confirm(&state.service, &user, &request.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// `DELETE /api/v1/totp`: the password or a current code, given again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Turns TOTP off for the caller, unless the tenant's policy requires it; the caller
/// proves it is them with their password or a current code.
#[utoipa::path(delete, path = "/api/v1/totp", tag = "accounts",
    request_body = Option<DisableTotp>,
    responses((status = 204, description = "TOTP is off")))]
pub(super) async fn disable(
    State(state): State<AppState>,
    user: User,
    ApiBytes(body): ApiBytes,
) -> Result<StatusCode, ApiError> {
    let request: Option<DisableTotp> = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .map_err(|err| ApiError::invalid(format!("invalid request body: {err}")))?,
        )
    };
    let proof = match request.map(|r| (r.password, r.code)) {
        Some((Some(password), None)) => Some(totp::Proof::Password(password)),
        Some((None, Some(code))) => Some(totp::Proof::Code(code)),
        _ => None,
    };
    totp::disable(&state.service, &user, proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's TOTP policy.
#[utoipa::path(get, path = "/api/v1/tenant/totp-policy", tag = "security",
    responses((status = 200, body = TotpPolicyBody)))]
pub(super) async fn policy(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<TotpPolicyBody>, ApiError> {
    Ok(Json(TotpPolicyBody {
        policy: totp::policy(&state.service, &user.scope).await?,
    }))
}

/// Sets the tenant's TOTP policy. Users it newly covers can only enrol until they do.
#[utoipa::path(put, path = "/api/v1/tenant/totp-policy", tag = "security",
    request_body = TotpPolicyBody,
    responses((status = 200, body = TotpPolicyBody)))]
pub(super) async fn set_policy(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<TotpPolicyBody>,
) -> Result<Json<TotpPolicyBody>, ApiError> {
    Ok(Json(TotpPolicyBody {
        policy: totp::set_policy(&state.service, &user, request.policy).await?,
    }))
}
