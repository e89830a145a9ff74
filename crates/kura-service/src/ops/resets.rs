//! Password reissue by mail: "forgot password" sends a single-use link valid for 30
//! minutes to the user's address, and a user admin can force a reset (the old password
//! stops working at once and a link is sent). Redeeming a link is `authz::redeem_reset`.
//!
//! "Forgot password" answers the same whether or not the login ID exists; the edge does
//! the lookup and the sending after answering, so neither its answer nor its timing tells.

use super::record;
use crate::audit::{self, Action, Chain, Entry};
use crate::authz::{Caller, ForgotTarget, TenantScope, UserPrincipal, forgot_target};
use crate::db::{resets, users};
use crate::ids::UserId;
use crate::mail::MailFailure;
use crate::ops::accounts::{hash_password_blocking, normalize_login};
use crate::secrets::{TokenKind, new_token, random_hex, token_hash};
use crate::{Service, ServiceError, ServiceResult};

/// How long a reset link works.
pub const RESET_LINK_MS: i64 = 30 * 60 * 1000;
/// "Forgot password" mails a user at most once in this interval.
pub const FORGOT_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// Refuses at once when the service has no way to send the mail.
pub fn require_mail(svc: &Service) -> ServiceResult<()> {
    if svc.settings.mail_enabled {
        Ok(())
    } else {
        Err(ServiceError::unavailable(
            "this service cannot send mail (smtp_url is not set), so no reset link can be sent; ask your tenant admin or provider",
        ))
    }
}

/// Creates a link for the user and mails it.
async fn send_reset_link(
    svc: &Service,
    scope: &TenantScope,
    user_id: &UserId,
    login: &str,
    email: &str,
) -> ServiceResult<()> {
    let token = new_token(TokenKind::PasswordReset);
    let now = svc.now_ms();
    resets::create(
        &svc.db,
        scope,
        user_id,
        &token_hash(&token),
        now,
        now + RESET_LINK_MS,
    )
    .await?;
    let body = format!(
        "Someone (hopefully you) asked to reset the Kura password of {login}.\r\n\r\n\
         Open this link within 30 minutes to choose a new password; it works once:\r\n\r\n\
         {url}/reset-password?token={token}\r\n\r\n\
         Scripts can send the token to POST /api/v1/password/reset.\r\n\
         If you did not ask for this, ignore this mail; your password stays as it is.\r\n",
        url = svc.public_url,
    );
    svc.mail
        .send(email, "Kura: reset your password", body)
        .await
        .map_err(|err| match err {
            MailFailure::NotConfigured => ServiceError::unavailable(
                "this service cannot send mail (smtp_url is not set); ask your provider",
            ),
            MailFailure::Failed(why) => ServiceError::unavailable(format!(
                "the reset mail could not be sent ({why}); try again later"
            )),
        })
}

/// Mails a reset link if the login ID names an active user with an address; records
/// the request in the tenant's log (or the operators' for an unknown login ID).
pub async fn forgot(svc: &Service, caller: &Caller, login: &str) -> ServiceResult<()> {
    let login = normalize_login(login);
    let actor = caller.actor(login.clone());
    let now = svc.now_ms();
    let (chain_scope, result) = match forgot_target(svc, &login, FORGOT_INTERVAL_MS).await? {
        ForgotTarget::Unknown => (None, "refused: unknown login ID".to_owned()),
        ForgotTarget::Refused { scope, reason } => (Some(scope), reason.to_owned()),
        ForgotTarget::Mail {
            scope,
            user_id,
            email,
        } => {
            let result = match send_reset_link(svc, &scope, &user_id, &login, &email).await {
                Ok(()) => format!("ok: link sent to {email}"),
                Err(err) => format!("failed: {}", err.message),
            };
            (Some(scope), result)
        }
    };
    let chain = chain_scope.as_ref().map_or_else(Chain::operators, Chain::tenant);
    let entry = Entry {
        chain,
        action: Action::PasswordForgot,
        target: &login,
        result: &result,
    };
    Ok(audit::record_alone(&svc.db, &actor, now, entry).await?)
}

/// A user admin forces a reset: a link goes to the user, then the old password, every
/// session and every API token of the user stop working. Answers the address mailed.
pub async fn force(svc: &Service, admin: &UserPrincipal, id: &str) -> ServiceResult<String> {
    let target = super::users::get(svc, &admin.scope, id).await?;
    let email = target.email.clone().ok_or_else(|| {
        ServiceError::conflict(
            "this user has no email address: set one (PATCH /api/v1/users/{id} with email) first",
        )
    })?;
    send_reset_link(svc, &admin.scope, &target.id, &target.login, &email).await?;
    let unusable = hash_password_blocking(random_hex(32)).await?;
    let mut tx = svc.db.begin().await?;
    users::set_password(&mut tx, &admin.scope, &target.id, &unusable, None, svc.now_ms()).await?;
    tx.commit().await?;
    record(
        svc,
        &admin.actor,
        &admin.scope,
        Action::PasswordForceReset,
        &target.login,
        &format!("ok: link sent to {email}"),
    )
    .await?;
    Ok(email)
}
