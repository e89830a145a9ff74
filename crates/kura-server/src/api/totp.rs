//! TOTP routes (customer listener): a user enrols (a secret, then a first code, which
//! yields recovery codes) or turns TOTP off; a tenant admin sets the policy that makes it
//! mandatory. Only sessions may enrol or turn TOTP off, never API tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiJson;
use super::types::{RecoveryCodes, TotpCode, TotpEnrolment, TotpPolicyBody};
use crate::app::AppState;
use crate::auth::UserPrincipal;
use crate::db::TenantUpdate;
use crate::error::ApiError;
use crate::secrets::token_hash;
use crate::totp;

/// Starts enrolment: a new secret, shown once, active after `confirm`.
pub(super) async fn enroll(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<TotpEnrolment>, ApiError> {
    user.session_id()?;
    if state
        .db
        .totp_state(&user.scope, &user.user_id)
        .await?
        .secret
        .is_some()
    {
        return Err(ApiError::conflict(
            "TOTP is already on for this account; turn it off first (DELETE /api/v1/totp)",
        ));
    }
    let secret = totp::new_secret();
    state
        .db
        .set_totp_pending(&user.scope, &user.user_id, Some(&secret))
        .await?;
    user.audit
        .record(&state, &user.scope, "totp.enroll", &user.login, "started")
        .await?;
    Ok(Json(TotpEnrolment {
        otpauth_uri: totp::otpauth_uri(&secret, &user.login),
        secret,
    }))
}

/// Finishes enrolment with a current code; answers the recovery codes, shown once.
pub(super) async fn confirm(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<TotpCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    user.session_id()?;
    let now = state.clock.now_ms();
    let pending = state
        .db
        .totp_state(&user.scope, &user.user_id)
        .await?
        .pending
        .ok_or_else(|| {
            ApiError::conflict("no TOTP enrolment is in progress; start with POST /api/v1/totp/enroll")
        })?;
    let step = totp::matching_step(&pending, &request.code, now, None).ok_or_else(|| {
        ApiError::invalid(
            "the code does not match: check that the device's clock is right and enter the current code",
        )
    })?;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|code| token_hash(code)).collect();
    if !state
        .db
        .activate_totp(&user.scope, &user.user_id, step, &hashes)
        .await?
    {
        return Err(ApiError::conflict(
            "no TOTP enrolment is in progress; start with POST /api/v1/totp/enroll",
        ));
    }
    user.audit
        .record(&state, &user.scope, "totp.enable", &user.login, "ok")
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turns TOTP off for the caller, unless the tenant's policy requires it.
pub(super) async fn disable(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<StatusCode, ApiError> {
    user.session_id()?;
    let tenant = super::current_tenant(&state, &user.scope).await?;
    if tenant.totp_policy.requires(user.role) {
        return Err(ApiError::conflict(
            "your tenant requires TOTP for your role; if your device is lost, ask an admin to reset it",
        ));
    }
    state.db.disable_totp(&user.scope, &user.user_id).await?;
    user.audit
        .record(&state, &user.scope, "totp.disable", &user.login, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's TOTP policy.
pub(super) async fn policy(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> Result<Json<TotpPolicyBody>, ApiError> {
    let tenant = super::current_tenant(&state, &user.scope).await?;
    Ok(Json(TotpPolicyBody {
        policy: tenant.totp_policy,
    }))
}

/// Sets the tenant's TOTP policy. Users it newly covers can only enrol until they do.
pub(super) async fn set_policy(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(request): ApiJson<TotpPolicyBody>,
) -> Result<Json<TotpPolicyBody>, ApiError> {
    let update = TenantUpdate {
        totp_policy: Some(request.policy),
        ..TenantUpdate::default()
    };
    let tenant = state
        .db
        .update_tenant(&user.scope, &update)
        .await?
        .ok_or_else(|| ApiError::not_found("this tenant no longer exists"))?;
    user.audit
        .record(
            &state,
            &user.scope,
            "tenant.totp_policy",
            tenant.totp_policy.as_str(),
            "ok",
        )
        .await?;
    Ok(Json(TotpPolicyBody {
        policy: tenant.totp_policy,
    }))
}
