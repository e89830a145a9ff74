//! Password reissue by mail: "forgot password" sends a single-use link valid for 30
//! minutes to the user's address, and a user admin can force a reset (the old password
//! stops working at once and a link is sent). The reset itself ends every session and
//! API token of the user.
//!
//! "Forgot password" answers the same whether or not the login ID exists, and does the
//! lookup and the sending after answering, so neither its answer nor its timing tells.
//! It mails one user at most once every 5 minutes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ApiJson;
use super::users::{Caller, target_user};
use crate::accounts::{check_password_policy, hash_password_blocking, normalize_login};
use crate::app::AppState;
use crate::audit::Audit;
use crate::auth::UserPrincipal;
use crate::db::TenantStatus;
use crate::error::ApiError;
use crate::mail::MailError;
use crate::secrets::{TokenKind, new_token, random_hex, token_hash};
use crate::tenancy::{TenantScope, UserId};

/// How long a reset link works.
pub const RESET_LINK_MS: i64 = 30 * 60 * 1000;
/// "Forgot password" mails a user at most once in this interval, so the route cannot be
/// used to flood someone's mailbox.
pub const FORGOT_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// `POST /api/v1/password/forgot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub login: String,
}

/// `POST /api/v1/password/reset`.
#[derive(Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequested {
    pub message: String,
}

/// Creates a link for the user and mails it.
async fn send_reset_link(
    state: &AppState,
    scope: &TenantScope,
    user_id: &UserId,
    login: &str,
    email: &str,
) -> Result<(), ApiError> {
    let token = new_token(TokenKind::PasswordReset);
    let now = state.clock.now_ms();
    state
        .db
        .create_password_reset(scope, user_id, &token_hash(&token), now, now + RESET_LINK_MS)
        .await?;
    let body = format!(
        "Someone (hopefully you) asked to reset the Kura password of {login}.\r\n\r\n\
         Open this link within 30 minutes to choose a new password; it works once:\r\n\r\n\
         {url}/reset-password?token={token}\r\n\r\n\
         Scripts can send the token to POST /api/v1/password/reset.\r\n\
         If you did not ask for this, ignore this mail; your password stays as it is.\r\n",
        url = state.public_url,
    );
    state
        .mailer
        .send(email, "Kura: reset your password", body)
        .await
        .map_err(|err| match err {
            MailError::NotConfigured => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this service cannot send mail (smtp_url is not set); ask your provider",
            ),
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the reset mail could not be sent ({other}); try again later"),
            ),
        })
}

/// Mails a reset link if the login ID names an active user with an address; answers the
/// same in every case.
pub(super) async fn forgot(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ForgotPassword>,
) -> (StatusCode, Json<ResetRequested>) {
    let login = normalize_login(&request.login);
    let audit = Audit {
        actor: login.clone(),
        source: caller.source,
        request_id: caller.request_id,
    };
    tokio::spawn(async move {
        if let Err(err) = mail_reset_link(&state, &audit, &login).await {
            tracing::warn!(error = %err.message, "password reset request failed");
        }
    });
    (
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            message: "if this login ID exists and has an email address, a reset link valid for 30 minutes \
                      has been sent to it"
                .to_owned(),
        }),
    )
}

async fn mail_reset_link(state: &AppState, audit: &Audit, login: &str) -> Result<(), ApiError> {
    let db = state.db.as_ref();
    let now = state.clock.now_ms();
    let Some(user) = db.login_candidate(login).await? else {
        return Ok(audit
            .operators(db, now, "password.forgot", login, "refused: unknown login ID")
            .await?);
    };
    // The login ID resolved to this tenant, whose log records the request.
    let scope = TenantScope::for_authenticated(user.tenant_id.clone());
    let result = match &user.email {
        _ if user.disabled || user.tenant_status != TenantStatus::Active => {
            "refused: account disabled or tenant not active".to_owned()
        }
        None => "refused: no email address".to_owned(),
        Some(_)
            if db
                .password_resets_since(&scope, &user.user_id, now - FORGOT_INTERVAL_MS)
                .await?
                > 0 =>
        {
            "refused: a link was sent less than 5 minutes ago".to_owned()
        }
        Some(email) => match send_reset_link(state, &scope, &user.user_id, login, email).await {
            Ok(()) => format!("ok: link sent to {email}"),
            Err(err) => format!("failed: {}", err.message),
        },
    };
    Ok(audit
        .tenant(db, &scope, now, "password.forgot", login, &result)
        .await?)
}

/// Sets a new password with a reset link.
pub(super) async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    let db = state.db.as_ref();
    let now = state.clock.now_ms();
    let invalid = || {
        ApiError::unauthorized(
            "this reset link is unknown, already used or expired (links work once, for 30 minutes); ask for a new one",
        )
    };
    let hash = token_hash(request.token.trim());
    let (tenant_id, user_id, login) = db.password_reset_user(&hash, now).await?.ok_or_else(invalid)?;
    check_password_policy(&login, &request.new_password)?;
    let scope = TenantScope::for_authenticated(tenant_id);
    let password_hash = hash_password_blocking(request.new_password).await?;
    if !db.consume_password_reset(&scope, &hash, now).await? {
        return Err(invalid());
    }
    db.set_password(&scope, &user_id, &password_hash, None, now)
        .await?;
    db.clear_login_failures(&login).await?;
    let audit = Audit {
        actor: login.clone(),
        source: caller.source,
        request_id: caller.request_id,
    };
    audit
        .tenant(db, &scope, now, "password.reset", &login, "ok")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user admin forces a reset: a link goes to the user, then the old password, every
/// session and every API token of the user stop working.
pub(super) async fn force_reset(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ResetRequested>), ApiError> {
    let target = target_user(&state, &user, &id).await?;
    let email = target.email.clone().ok_or_else(|| {
        ApiError::conflict(
            "this user has no email address: set one (PATCH /api/v1/users/{id} with email) first",
        )
    })?;
    send_reset_link(&state, &user.scope, &target.id, &target.login, &email).await?;
    let unusable = hash_password_blocking(random_hex(32)).await?;
    let now = state.clock.now_ms();
    state
        .db
        .set_password(&user.scope, &target.id, &unusable, None, now)
        .await?;
    user.audit
        .record(
            &state,
            &user.scope,
            "password.force_reset",
            &target.login,
            &format!("ok: link sent to {email}"),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetRequested {
            message: format!("a reset link valid for 30 minutes was sent to {email}"),
        }),
    ))
}
