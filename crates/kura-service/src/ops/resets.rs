//! Password reissue by mail: "forgot password" sends a single-use link valid for 30
//! minutes to the user's address, and a user admin can force a reset (the old password
//! stops working at once and a link is sent). Redeeming a link is `authz::redeem_reset`.
//!
//! The link and its mail are written in one transaction (the mail goes through the
//! outbox, so a mail server that is down delays it, within the link's 30 minutes, and
//! never loses it). "Forgot password" answers the same whether or not the login ID
//! exists; the edge does the lookup after answering, so neither its answer nor its
//! timing tells.

use super::record_in;
use crate::audit::{self, Action, Chain, Entry};
use crate::authz::{Caller, ForgotTarget, TenantScope, UserPrincipal, forgot_target};
use crate::db::{Tx, outbox, resets, users};
use crate::ids::UserId;
use crate::mail::MailContent;
use crate::model::NewMail;
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

/// Creates a link for the user and queues the mail that carries it, in the caller's
/// transaction: the link exists only if its mail is on its way.
async fn queue_reset_link(
    svc: &Service,
    tx: &mut Tx,
    scope: &TenantScope,
    user_id: &UserId,
    email: &str,
    content: impl FnOnce(String) -> MailContent,
) -> ServiceResult<()> {
    let token = new_token(TokenKind::PasswordReset);
    let now = svc.now_ms();
    resets::create(
        &mut *tx,
        scope,
        user_id,
        &token_hash(&token),
        now,
        now + RESET_LINK_MS,
    )
    .await?;
    let mail = NewMail {
        recipient: email.to_owned(),
        language: users::mail_language(&mut *tx, scope, user_id).await?,
        content: content(format!("{}/reset-password?token={token}", svc.public_url)),
        // A link that has expired is not worth sending.
        give_up_ms: now + RESET_LINK_MS,
    };
    outbox::queue(&mut *tx, scope, &mail, now).await?;
    Ok(())
}

/// Minutes a reset link works, for the mail.
const RESET_LINK_MINUTES: u32 = (RESET_LINK_MS / 60_000) as u32;

/// Mails a reset link if the login ID names an active user with an address; records
/// the request in the tenant's log (or the operators' for an unknown login ID).
pub async fn forgot(svc: &Service, caller: &Caller, login: &str) -> ServiceResult<()> {
    let login = normalize_login(login);
    let actor = caller.actor(login.clone());
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let (chain_scope, result) = match forgot_target(svc, &login, FORGOT_INTERVAL_MS).await? {
        ForgotTarget::Unknown => (None, "refused: unknown login ID".to_owned()),
        ForgotTarget::Refused { scope, reason } => (Some(scope), reason.to_owned()),
        ForgotTarget::Mail {
            scope,
            user_id,
            email,
        } => {
            queue_reset_link(svc, &mut tx, &scope, &user_id, &email, |link| {
                MailContent::PasswordReset {
                    login: login.clone(),
                    link,
                    minutes: RESET_LINK_MINUTES,
                }
            })
            .await?;
            (Some(scope), format!("ok: link queued for {email}"))
        }
    };
    let chain = chain_scope.as_ref().map_or_else(Chain::operators, Chain::tenant);
    let entry = Entry {
        chain,
        action: Action::PasswordForgot,
        target: &login,
        result: &result,
    };
    audit::record(&mut tx, &actor, now, entry).await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(())
}

/// A user admin forces a reset: a link goes to the user, and the old password, every
/// session and every API token of the user stop working. Answers the address mailed.
pub async fn force(svc: &Service, admin: &UserPrincipal, id: &str) -> ServiceResult<String> {
    require_mail(svc)?;
    let target = super::users::get(svc, &admin.scope, id).await?;
    let email = target.email.clone().ok_or_else(|| {
        ServiceError::conflict(
            "this user has no email address: set one (PATCH /api/v1/users/{id} with email) first",
        )
    })?;
    let unusable = hash_password_blocking(random_hex(32)).await?;
    let mut tx = svc.db.begin().await?;
    queue_reset_link(svc, &mut tx, &admin.scope, &target.id, &email, |link| {
        MailContent::PasswordForcedReset {
            login: target.login.clone(),
            link,
            minutes: RESET_LINK_MINUTES,
            admin: admin.actor.name.clone(),
        }
    })
    .await?;
    users::set_password(&mut tx, &admin.scope, &target.id, &unusable, None, svc.now_ms()).await?;
    record_in(
        &mut tx,
        &admin.actor,
        svc.now_ms(),
        &admin.scope,
        Action::PasswordForceReset,
        &target.login,
        &format!("ok: link queued for {email}"),
    )
    .await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(email)
}
