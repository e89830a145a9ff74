//! Tenant users: the caller's own sessions, password and API tokens, and user
//! administration (create, change role, disable, unlock, reset TOTP, delete) with the
//! rule that a tenant always keeps at least one active admin, and the admin allow-list.

use super::record_in;
use crate::audit::Action;
use crate::authz::{
    Permission, TenantRole, TenantScope, Throttle, UserCredential, UserPrincipal, throttle,
    verify_user_password,
};
use crate::db::DbError;
use crate::db::{Tx, logins, machines, sessions, tenants, tokens, users};
use crate::ids::UserId;
use crate::model::{
    ApiTokenRecord, Language, NewApiToken, NewTenantUser, TenantUpdate, TenantUserRecord, UserSessionRecord,
    UserUpdate,
};
use crate::ops::accounts::{check_password_policy, hash_password_blocking, normalize_login, validate_login};
use crate::ops::tenants::parse_networks;
use crate::secrets::{TokenKind, new_password, new_token, random_hex, token_hash};
use crate::{Service, ServiceError, ServiceResult, duration_ms, rfc3339};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Ends the caller's session.
pub async fn logout(svc: &Service, user: &UserPrincipal) -> ServiceResult<()> {
    let session_id = user.session_id()?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    sessions::revoke(&mut tx, &user.scope, &user.user_id, session_id, now).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::Logout,
        &user.login,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Changes the caller's password after checking the old one (throttled like a sign-in);
/// ends every other session and revokes the caller's API tokens.
pub async fn change_password(
    svc: &Service,
    user: &UserPrincipal,
    old_password: String,
    new_password: String,
) -> ServiceResult<()> {
    let session_id = user.session_id()?.to_owned();
    verify_user_password(svc, user, old_password, Action::UserPassword)
        .await
        .map_err(|err| match err.kind {
            crate::ErrorKind::Forbidden => ServiceError::forbidden("the old password is wrong"),
            _ => err,
        })?;
    check_password_policy(&user.login, &new_password)?;
    let hash = hash_password_blocking(new_password).await?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    users::set_password(&mut tx, &user.scope, &user.user_id, &hash, Some(&session_id), now).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::UserPassword,
        &user.login,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller's sessions, newest first.
pub async fn sessions(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<UserSessionRecord>> {
    Ok(sessions::list(&svc.db, &user.scope, &user.user_id).await?)
}

/// Ends one of the caller's sessions (e.g. one left open elsewhere).
pub async fn revoke_session(svc: &Service, user: &UserPrincipal, session_id: &str) -> ServiceResult<()> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if !sessions::revoke(&mut tx, &user.scope, &user.user_id, session_id, now).await? {
        return Err(ServiceError::not_found("you have no open session with this id"));
    }
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::SessionRevoke,
        session_id,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller's API tokens.
pub async fn tokens(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<ApiTokenRecord>> {
    Ok(tokens::list(&svc.db, &user.scope, Some(&user.user_id)).await?)
}

/// A new API token, shown once.
pub struct CreatedToken {
    pub token: String,
    pub record: ApiTokenRecord,
}

/// Creates an API token for the caller, with a role no higher than theirs.
pub async fn create_token(
    svc: &Service,
    user: &UserPrincipal,
    name: &str,
    role: Option<TenantRole>,
    expires_in_days: Option<u32>,
) -> ServiceResult<CreatedToken> {
    user.session_id()?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || super::has_hidden_characters(name) {
        return Err(ServiceError::invalid(
            "name must be 1 to 100 characters without control characters (say what the token is for)",
        ));
    }
    let role = role.unwrap_or(user.role);
    if !user.role.covers(role) {
        return Err(ServiceError::forbidden(format!(
            "an API token's role cannot be above your own ({}); choose {} or a lower role",
            user.role.as_str(),
            user.role.as_str()
        )));
    }
    let days = expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ServiceError::invalid("expires_in_days must be between 1 and 365"));
    }
    let now = svc.now_ms();
    let token = new_token(TokenKind::ApiToken);
    let new = NewApiToken {
        id: random_hex(16),
        user_id: user.user_id.clone(),
        name: name.to_owned(),
        role,
        token_hash: token_hash(&token),
        expires_ms: now.saturating_add(i64::from(days) * DAY_MS),
    };
    let mut tx = svc.db.begin().await?;
    tokens::create(&mut tx, &user.scope, &new, now).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::TokenCreate,
        &format!("{} ({})", new.name, new.id),
        &format!("ok: role {}, expires {}", role.as_str(), rfc3339(new.expires_ms)),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedToken {
        token,
        record: ApiTokenRecord {
            id: new.id,
            user_id: new.user_id,
            name: new.name,
            role,
            created_ms: now,
            expires_ms: new.expires_ms,
            last_used_ms: None,
            revoked_ms: None,
        },
    })
}

/// Revokes one of the caller's tokens; user admins may revoke any token of the tenant.
pub async fn revoke_token(svc: &Service, user: &UserPrincipal, token_id: &str) -> ServiceResult<()> {
    let now = svc.now_ms();
    let owner = (!user.role.allows(Permission::ManageUsers)).then_some(&user.user_id);
    let mut tx = svc.db.begin().await?;
    if !tokens::revoke(&mut tx, &user.scope, owner, token_id, now).await? {
        return Err(ServiceError::not_found("no live API token with this id"));
    }
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::TokenRevoke,
        token_id,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A user with the time their login is locked until, if it is.
pub struct UserState {
    pub user: TenantUserRecord,
    pub locked_until_ms: Option<i64>,
}

/// The tenant's users, with their lockout state.
pub async fn list(svc: &Service, scope: &TenantScope) -> ServiceResult<Vec<UserState>> {
    let now = svc.now_ms();
    let since = now.saturating_sub(duration_ms(svc.settings.login_lockout_period));
    let mut states = Vec::new();
    for user in users::list(&svc.db, scope).await? {
        let mut failures = logins::failures(&svc.db, &user.login, "", since).await?;
        failures.by_source = 0;
        let locked_until_ms = match throttle(&svc.settings, &failures, now) {
            Throttle::Locked { until_ms } => Some(until_ms),
            _ => None,
        };
        states.push(UserState {
            user,
            locked_until_ms,
        });
    }
    Ok(states)
}

/// A new user, and the generated password when none was given (shown once).
pub struct CreatedUser {
    pub user: TenantUserRecord,
    pub password: Option<String>,
}

/// Checks an e-mail address well enough to send to it.
pub fn validate_email(email: &str) -> ServiceResult<()> {
    let valid = email.len() <= 254
        && !super::has_hidden_characters(email)
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "invalid mail address {email:?}: use a full address such as name@example.com"
        )))
    }
}

/// Adds a user to the caller's tenant.
pub async fn create(
    svc: &Service,
    admin: &UserPrincipal,
    login: &str,
    password: Option<String>,
    role: TenantRole,
    email: Option<String>,
) -> ServiceResult<CreatedUser> {
    let login = normalize_login(login);
    validate_login(&login)?;
    let (password, generated) = match password {
        Some(password) => {
            check_password_policy(&login, &password)?;
            (password, None)
        }
        None => {
            let password = new_password();
            (password.clone(), Some(password))
        }
    };
    if let Some(email) = &email {
        validate_email(email)?;
    }
    let new = NewTenantUser {
        login: login.clone(),
        password_hash: hash_password_blocking(password).await?,
        role,
        email,
    };
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let user = match users::create(&mut tx, &admin.scope, &new, now).await {
        Ok(user) => user,
        Err(DbError::Conflict(_)) => {
            return Err(ServiceError::conflict(
                "this login ID is not available; choose another (login IDs are unique across the service)",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    record_in(
        &mut tx,
        &admin.actor,
        now,
        &admin.scope,
        Action::UserCreate,
        &login,
        &format!("ok: role {}", user.role.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedUser {
        user,
        password: generated,
    })
}

fn not_found() -> ServiceError {
    ServiceError::not_found("this tenant has no user with this id")
}

/// The tenant's user with this id (as a URL gave it).
pub async fn get(svc: &Service, scope: &TenantScope, id: &str) -> ServiceResult<TenantUserRecord> {
    let id = UserId::parse(id).ok_or_else(not_found)?;
    users::get(&svc.db, scope, &id).await?.ok_or_else(not_found)
}

fn refuse_self(admin: &UserPrincipal, target: &TenantUserRecord, what: &str) -> ServiceResult<()> {
    if target.id == admin.user_id {
        return Err(ServiceError::conflict(format!(
            "you cannot {what} yourself, so a tenant always keeps an admin; ask another admin"
        )));
    }
    Ok(())
}

/// Refuses a change that would leave the tenant without an enabled admin. Runs inside the
/// change's transaction after [`locked_target`], so two admins demoting each other at the
/// same moment cannot both succeed.
async fn keep_an_admin(
    tx: &mut crate::db::Tx,
    scope: &TenantScope,
    target: &TenantUserRecord,
) -> ServiceResult<()> {
    let is_active_admin = target.role == TenantRole::Admin && target.disabled_ms.is_none();
    if is_active_admin && users::count_active_admins(tx, scope).await? <= 1 {
        return Err(ServiceError::conflict(
            "this is the tenant's last active admin: make another user an admin first, so someone can still manage users",
        ));
    }
    Ok(())
}

/// The user a change is about, read once inside the change's transaction with the tenant
/// row locked, so what is checked is what is changed.
async fn locked_target(
    tx: &mut crate::db::Tx,
    scope: &TenantScope,
    id: &str,
) -> ServiceResult<TenantUserRecord> {
    let id = UserId::parse(id).ok_or_else(not_found)?;
    tenants::lock(tx, scope).await?;
    users::get(tx, scope, &id).await?.ok_or_else(not_found)
}

/// What an admin asks to change about a user.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<TenantRole>,
    pub disabled: Option<bool>,
    pub email: Option<String>,
    pub unlock: bool,
    pub reset_totp: bool,
}

/// Changes a user's role, disables or enables them, sets their mail address, lifts a
/// lockout or resets their TOTP. Lowering a role revokes the user's API tokens that are
/// above the new role for good.
pub async fn update(
    svc: &Service,
    admin: &UserPrincipal,
    id: &str,
    change: UserChange,
) -> ServiceResult<TenantUserRecord> {
    if change.role.is_none()
        && change.disabled.is_none()
        && change.email.is_none()
        && !change.unlock
        && !change.reset_totp
    {
        return Err(ServiceError::invalid(
            "give at least one of role, disabled, email, unlock or reset_totp",
        ));
    }
    if let Some(email) = &change.email {
        validate_email(email)?;
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let target = locked_target(&mut tx, &admin.scope, id).await?;
    let demotes = change.role.is_some_and(|role| role != target.role);
    if demotes || change.disabled == Some(true) {
        refuse_self(admin, &target, "change the role of or disable")?;
    }
    if change.role.is_some_and(|role| role != TenantRole::Admin) || change.disabled == Some(true) {
        keep_an_admin(&mut tx, &admin.scope, &target).await?;
    }
    let update = UserUpdate {
        role: change.role,
        disabled: change.disabled,
        email: change.email.clone(),
    };
    let mut user = users::update(&mut tx, &admin.scope, &target.id, &update, now)
        .await?
        .ok_or_else(not_found)?;
    if let Some(role) = change.role {
        let above: Vec<&'static str> = TenantRole::ALL
            .into_iter()
            .filter(|candidate| !role.covers(*candidate))
            .map(TenantRole::as_str)
            .collect();
        tokens::revoke_above(&mut tx, &admin.scope, &user.id, &above, now).await?;
    }
    if change.unlock {
        logins::clear_failures(&mut tx, &user.login).await?;
    }
    if change.reset_totp {
        users::disable_totp(&mut tx, &admin.scope, &user.id).await?;
        user.totp_enrolled = false;
    }
    let mut changes = Vec::new();
    if let Some(role) = change.role {
        changes.push(format!("role {}", role.as_str()));
    }
    if let Some(disabled) = change.disabled {
        changes.push(if disabled { "disabled" } else { "enabled" }.to_owned());
    }
    if change.unlock {
        changes.push("unlocked".to_owned());
    }
    if change.reset_totp {
        changes.push("TOTP reset".to_owned());
    }
    if let Some(email) = &change.email {
        changes.push(format!("email {email}"));
    }
    record_in(
        &mut tx,
        &admin.actor,
        now,
        &admin.scope,
        Action::UserUpdate,
        &user.login,
        &format!("ok: {}", changes.join(", ")),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Deletes a user with their sessions and API tokens; never the last active admin.
pub async fn delete(svc: &Service, admin: &UserPrincipal, id: &str) -> ServiceResult<()> {
    let mut tx = svc.db.begin().await?;
    let target = locked_target(&mut tx, &admin.scope, id).await?;
    refuse_self(admin, &target, "delete")?;
    keep_an_admin(&mut tx, &admin.scope, &target).await?;
    if !users::delete(&mut tx, &admin.scope, &target.id).await? {
        return Err(not_found());
    }
    record_in(
        &mut tx,
        &admin.actor,
        svc.now_ms(),
        &admin.scope,
        Action::UserDelete,
        &target.login,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the admin allow-list; refuses a list that would shut out the caller.
pub async fn set_admin_networks(
    svc: &Service,
    admin: &UserPrincipal,
    cidrs: &[String],
) -> ServiceResult<Vec<ipnet::IpNet>> {
    let networks = parse_networks("admin network", cidrs)?;
    if !machines::network_allows(&networks, admin.actor.source) {
        let here = admin
            .actor
            .source
            .map_or_else(|| "your address".to_owned(), |ip| ip.to_string());
        return Err(ServiceError::conflict(format!(
            "this list does not include the address you are using ({here}), so saving it would lock you out; add it"
        )));
    }
    let update = TenantUpdate {
        admin_networks: Some(networks),
        ..TenantUpdate::default()
    };
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::update(&mut tx, &admin.scope, &update)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let shown = if tenant.admin_networks.is_empty() {
        "anywhere".to_owned()
    } else {
        tenant
            .admin_networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    record_in(
        &mut tx,
        &admin.actor,
        now,
        &admin.scope,
        Action::TenantAdminNetworks,
        &shown,
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(tenant.admin_networks)
}

/// How the caller is signed in, for "who am I".
pub fn credential_kind(user: &UserPrincipal) -> &'static str {
    match user.credential {
        UserCredential::Session(_) => "session",
        UserCredential::ApiToken(_) => "api-token",
    }
}

/// The caller sets their own language for pages and mail (`ja` or `en`), or clears it
/// (`None`) to follow the tenant's default.
pub async fn set_language(svc: &Service, user: &UserPrincipal, language: Option<&str>) -> ServiceResult<()> {
    let language = language
        .map(|text| {
            Language::parse(text).ok_or_else(|| {
                ServiceError::invalid(format!("language {text:?} is not offered: use \"ja\" or \"en\""))
            })
        })
        .transpose()?;
    let mut tx = svc.db.begin().await?;
    users::set_language(&mut tx, &user.scope, &user.user_id, language).await?;
    let result = format!(
        "ok: language {}",
        language.map_or("(tenant default)", Language::as_str)
    );
    commit_own_setting(svc, tx, user, &result).await
}

/// The caller turns the mailing of alerts to themselves on or off.
pub async fn set_alert_mail(svc: &Service, user: &UserPrincipal, on: bool) -> ServiceResult<()> {
    let mut tx = svc.db.begin().await?;
    users::set_alert_mail(&mut tx, &user.scope, &user.user_id, on).await?;
    let result = format!("ok: alert mail {}", if on { "on" } else { "off" });
    commit_own_setting(svc, tx, user, &result).await
}

/// Records a change the caller made to their own settings in the tenant's log, and
/// commits it.
async fn commit_own_setting(
    svc: &Service,
    mut tx: Tx,
    user: &UserPrincipal,
    result: &str,
) -> ServiceResult<()> {
    record_in(
        &mut tx,
        &user.actor,
        svc.now_ms(),
        &user.scope,
        Action::UserUpdate,
        &user.login,
        result,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
