//! TOTP for one's own account (enrol, confirm, turn off) and the tenant's TOTP policy.
//! Only sessions may enrol or turn TOTP off, never API tokens.

use super::record_in;
use crate::audit::Action;
use crate::authz::{TenantScope, UserPrincipal, verify_user_code, verify_user_password};
use crate::db::{self, tenants, users};
use crate::ids::UserId;
use crate::model::TenantUpdate;
use crate::secrets::{ServiceKey, token_hash};
use crate::totp::{self, TotpPolicy};
use crate::{Service, ServiceError, ServiceResult};

/// A secret handed out for enrolment (shown once) and its `otpauth://` URI.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// Starts enrolment: a new secret, active after [`confirm`].
pub async fn enroll(svc: &Service, user: &UserPrincipal) -> ServiceResult<Enrolment> {
    user.session_id()?;
    if users::totp_state(&svc.db, &user.scope, &user.user_id)
        .await?
        .secret
        .is_some()
    {
        return Err(ServiceError::conflict(
            "TOTP is already on for this account; turn it off first (DELETE /api/v1/totp)",
        ));
    }
    let secret = totp::new_secret();
    let sealed = svc.key.seal(&secret, &secret_context(&user.user_id));
    let mut tx = svc.db.begin().await?;
    users::set_totp_pending(&mut tx, &user.scope, &user.user_id, Some(&sealed)).await?;
    record_in(
        &mut tx,
        &user.actor,
        svc.now_ms(),
        &user.scope,
        Action::TotpEnroll,
        &user.login,
        "started",
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolment {
        otpauth_uri: totp::otpauth_uri(&secret, &user.login),
        secret,
    })
}

/// Finishes enrolment with a current code; answers the recovery codes, shown once.
pub async fn confirm(svc: &Service, user: &UserPrincipal, code: &str) -> ServiceResult<Vec<String>> {
    user.session_id()?;
    let now = svc.now_ms();
    let not_started =
        || ServiceError::conflict("no TOTP enrolment is in progress; start with POST /api/v1/totp/enroll");
    let pending = users::totp_state(&svc.db, &user.scope, &user.user_id)
        .await?
        .pending
        .ok_or_else(not_started)?;
    let pending = open_secret(svc, &user.user_id, &pending)?;
    let step = totp::matching_step(&pending, code, now, None).ok_or_else(|| {
        ServiceError::invalid(
            "the code does not match: check that the device's clock is right and enter the current code",
        )
    })?;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|code| token_hash(code)).collect();
    let mut tx = svc.db.begin().await?;
    if !users::activate_totp(&mut tx, &user.scope, &user.user_id, step, &hashes).await? {
        return Err(not_started());
    }
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::TotpEnable,
        &user.login,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// How the caller proves, once more, that it is them.
pub enum Proof {
    Password(String),
    /// A current TOTP code or an unused recovery code.
    Code(String),
}

/// Turns TOTP off for the caller, unless the tenant's policy requires it. A stolen
/// session alone cannot do it: the caller gives their password or a current code again,
/// and wrong ones are throttled like sign-ins.
pub async fn disable(svc: &Service, user: &UserPrincipal, proof: Option<Proof>) -> ServiceResult<()> {
    user.session_id()?;
    let tenant = super::tenants::current(svc, &user.scope).await?;
    if tenant.totp_policy.requires(user.role) {
        return Err(ServiceError::conflict(
            "your tenant requires TOTP for your role; if your device is lost, ask an admin to reset it",
        ));
    }
    let proof = proof.ok_or_else(|| {
        ServiceError::invalid(
            "to turn TOTP off, give your password or a current code again: {\"password\": \"…\"} or {\"code\": \"123456\"}",
        )
    })?;
    match proof {
        Proof::Password(password) => verify_user_password(svc, user, password, Action::TotpDisable).await?,
        Proof::Code(code) => verify_user_code(svc, user, code.trim(), Action::TotpDisable).await?,
    }
    let mut tx = svc.db.begin().await?;
    users::disable_totp(&mut tx, &user.scope, &user.user_id).await?;
    record_in(
        &mut tx,
        &user.actor,
        svc.now_ms(),
        &user.scope,
        Action::TotpDisable,
        &user.login,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets the tenant's TOTP policy. Users it newly covers can only enrol until they do.
pub async fn set_policy(
    svc: &Service,
    admin: &UserPrincipal,
    policy: TotpPolicy,
) -> ServiceResult<TotpPolicy> {
    let update = TenantUpdate {
        totp_policy: Some(policy),
        ..TenantUpdate::default()
    };
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::update(&mut tx, &admin.scope, &update)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    record_in(
        &mut tx,
        &admin.actor,
        svc.now_ms(),
        &admin.scope,
        Action::TenantTotpPolicy,
        tenant.totp_policy.as_str(),
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(tenant.totp_policy)
}

/// The tenant's TOTP policy.
pub async fn policy(svc: &Service, scope: &TenantScope) -> ServiceResult<TotpPolicy> {
    Ok(super::tenants::current(svc, scope).await?.totp_policy)
}

/// What a user's TOTP secret is sealed for: the user, so a value copied to another row
/// does not open.
fn secret_context(user_id: &UserId) -> String {
    format!("totp:{user_id}")
}

/// Opens a user's stored TOTP secret.
pub(crate) fn open_secret(svc: &Service, user_id: &UserId, sealed: &str) -> ServiceResult<String> {
    svc.key.open(sealed, &secret_context(user_id)).map_err(|err| {
        ServiceError::internal(
            "cannot open a stored TOTP secret (is service_key the one that sealed it?)",
            &err,
        )
    })
}

/// Checks that this server's service key is the one the database's secrets are sealed
/// with (the first server to start records a value sealed with its key). Runs at start.
pub async fn check_service_key(svc: &Service) -> ServiceResult<()> {
    const NAME: &str = "key_check";
    db::operators::init_setting(&svc.db, NAME, &svc.key.seal(NAME, NAME)).await?;
    let sealed = db::operators::setting(&svc.db, NAME).await?.ok_or_else(|| {
        ServiceError::unavailable("the service key check was not recorded; start the server again")
    })?;
    match svc.key.open(&sealed, NAME) {
        Ok(_) => Ok(()),
        Err(_) => Err(ServiceError::unavailable(
            "this server's service key is not the one the database's secrets are sealed with: \
             give every server of the service the same service_key (the first server's is in its DATA/service-key)",
        )),
    }
}

/// Seals TOTP secrets stored in plain text by versions before sealing; answers how many
/// users' secrets it sealed. Runs at start, before any request.
pub async fn seal_plain_secrets(svc: &Service) -> ServiceResult<u64> {
    let mut sealed = 0;
    for (tenant_id, user_id, secret, pending) in users::plain_totp_secrets(&svc.db).await? {
        let context = secret_context(&user_id);
        let seal = |value: Option<String>| {
            value.map(|v| {
                if ServiceKey::is_sealed(&v) {
                    v
                } else {
                    svc.key.seal(&v, &context)
                }
            })
        };
        users::store_sealed_totp(
            &svc.db,
            &tenant_id,
            &user_id,
            seal(secret).as_deref(),
            seal(pending).as_deref(),
        )
        .await?;
        sealed += 1;
    }
    Ok(sealed)
}
