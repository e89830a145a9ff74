//! `tenant_users` and what hangs on a user: passwords, TOTP and recovery codes.

use super::{DbResult, Query, Target, Tx, Value, count_u32, map_unique_violation};
use crate::authz::{TenantKey, TenantRole};
use crate::ids::{TenantId, UserId};
use crate::model::{
    Language, MailAudience, MailRecipient, NewTenantUser, TenantUserRecord, TotpState, UserUpdate,
};

/// The columns of `tenant_users` in the order of [`TenantUserRow`].
macro_rules! user_columns {
    () => {
        "id, login, role, disabled_ms, created_ms, totp_secret IS NOT NULL AS totp_enrolled, email, language, \
         alert_mail"
    };
}

#[derive(sqlx::FromRow)]
struct TenantUserRow {
    id: String,
    login: String,
    role: String,
    disabled_ms: Option<i64>,
    created_ms: i64,
    totp_enrolled: bool,
    email: Option<String>,
    language: Option<String>,
    alert_mail: bool,
}

impl TenantUserRow {
    fn into_record(self) -> DbResult<TenantUserRecord> {
        Ok(TenantUserRecord {
            id: UserId::from_db(self.id),
            login: self.login,
            role: self.role.parse()?,
            disabled_ms: self.disabled_ms,
            created_ms: self.created_ms,
            totp_enrolled: self.totp_enrolled,
            email: self.email,
            language: self.language.map(|l| l.parse()).transpose()?,
            alert_mail: self.alert_mail,
        })
    }
}

/// Inserts a user row of `tenant_id` (a tenant being created has no scope yet).
pub(super) async fn insert(
    tx: &mut Tx,
    tenant_id: &TenantId,
    id: &UserId,
    user: &NewTenantUser,
    now_ms: i64,
) -> DbResult<TenantUserRecord> {
    let row: TenantUserRow = Query::service(concat!(
        "INSERT INTO tenant_users (tenant_id, id, login, password_hash, role, created_ms, email) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        user_columns!()
    ))
    .bind(tenant_id.as_str())
    .bind(id.as_str())
    .bind(&user.login)
    .bind(&user.password_hash)
    .bind(user.role.as_str())
    .bind(now_ms)
    .bind(user.email.as_deref())
    .fetch_one(tx)
    .await?;
    row.into_record()
}

/// The tenant's users, by login.
pub async fn list<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Vec<TenantUserRecord>> {
    let rows: Vec<TenantUserRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM tenant_users WHERE tenant_id = $1 ORDER BY login"
        ),
    )
    .fetch_all(on)
    .await?;
    rows.into_iter().map(TenantUserRow::into_record).collect()
}

/// One user of the tenant.
pub async fn get<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
) -> DbResult<Option<TenantUserRecord>> {
    let row: Option<TenantUserRow> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM tenant_users WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(user_id.as_str())
    .fetch_optional(on)
    .await?;
    row.map(TenantUserRow::into_record).transpose()
}

/// Adds a user; a login taken anywhere in the service is a conflict.
pub async fn create(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user: &NewTenantUser,
    now_ms: i64,
) -> DbResult<TenantUserRecord> {
    insert(tx, scope.tenant_id(), &UserId::generate(), user, now_ms)
        .await
        .map_err(|err| map_unique_violation(err, "", &user.login))
}

/// Enabled admins of the tenant.
pub async fn count_active_admins(tx: &mut Tx, scope: &impl TenantKey) -> DbResult<u32> {
    let (count,): (i64,) = Query::tenant(
        scope,
        "SELECT COUNT(*) FROM tenant_users WHERE tenant_id = $1 AND role = $2 AND disabled_ms IS NULL",
    )
    .bind(TenantRole::Admin.as_str())
    .fetch_one(tx)
    .await?;
    Ok(count_u32(count))
}

/// Applies `update`; disabling also revokes the user's sessions and API tokens.
pub async fn update(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user_id: &UserId,
    update: &UserUpdate,
    now_ms: i64,
) -> DbResult<Option<TenantUserRecord>> {
    let disabled_ms = match update.disabled {
        None => None,
        Some(true) => Some(Some(now_ms)),
        Some(false) => Some(None),
    };
    let row: Option<TenantUserRow> = Query::tenant(
        scope,
        concat!(
            "UPDATE tenant_users SET role = COALESCE($3, role), \
             disabled_ms = CASE WHEN $4 THEN $5 ELSE disabled_ms END, email = COALESCE($6, email) \
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            user_columns!()
        ),
    )
    .bind(user_id.as_str())
    .bind(update.role.map(TenantRole::as_str))
    .bind(disabled_ms.is_some())
    .bind(disabled_ms.flatten())
    .bind(update.email.as_deref())
    .fetch_optional(&mut *tx)
    .await?;
    if update.disabled == Some(true) && row.is_some() {
        revoke_credentials(tx, scope, user_id, None, now_ms).await?;
    }
    row.map(TenantUserRow::into_record).transpose()
}

/// Revokes every live session (but `keep_session`) and API token of the user.
async fn revoke_credentials(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user_id: &UserId,
    keep_session: Option<&str>,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE user_sessions SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 \
         AND revoked_ms IS NULL AND id <> $4",
    )
    .bind(user_id.as_str())
    .bind(now_ms)
    .bind(keep_session.unwrap_or(""))
    .execute(&mut *tx)
    .await?;
    Query::tenant(
        scope,
        "UPDATE api_tokens SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL",
    )
    .bind(user_id.as_str())
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(())
}

/// Deletes the user with their sessions, API tokens, recovery codes and reset links.
/// `false` if there is no such user.
pub async fn delete(tx: &mut Tx, scope: &impl TenantKey, user_id: &UserId) -> DbResult<bool> {
    for statement in [
        "DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM totp_recovery_codes WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM password_resets WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM notice_reads WHERE tenant_id = $1 AND user_id = $2",
        "UPDATE support_requests SET user_id = NULL WHERE tenant_id = $1 AND user_id = $2",
    ] {
        Query::tenant(scope, statement)
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let deleted = Query::tenant(scope, "DELETE FROM tenant_users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.as_str())
        .execute(tx)
        .await?;
    Ok(deleted == 1)
}

/// The user's password hash, for checking a re-authentication.
pub async fn password_hash<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::tenant(
        scope,
        "SELECT password_hash FROM tenant_users WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .fetch_optional(on)
    .await?;
    Ok(row.map(|(hash,)| hash))
}

/// Replaces the user's password hash and revokes every session and API token of the
/// user except the session `keep_session` (the one changing its own password).
pub async fn set_password(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user_id: &UserId,
    password_hash: &str,
    keep_session: Option<&str>,
    now_ms: i64,
) -> DbResult<bool> {
    let changed = Query::tenant(
        scope,
        "UPDATE tenant_users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    revoke_credentials(tx, scope, user_id, keep_session, now_ms).await?;
    Ok(changed == 1)
}

/// The user's TOTP state.
pub async fn totp_state<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
) -> DbResult<TotpState> {
    let row: Option<(Option<String>, Option<String>, Option<i64>)> = Query::tenant(
        scope,
        "SELECT totp_secret, totp_pending, totp_last_step FROM tenant_users WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .fetch_optional(on)
    .await?;
    Ok(row
        .map(|(secret, pending, last_step)| TotpState {
            secret,
            pending,
            last_step,
        })
        .unwrap_or_default())
}

/// Sets (or clears) the secret being enrolled.
pub async fn set_totp_pending<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    secret: Option<&str>,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_users SET totp_pending = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .bind(secret)
    .execute(on)
    .await?;
    Ok(())
}

/// Makes the pending secret active as of `step` and replaces the recovery codes
/// (stored by hash). `false` if nothing was pending.
pub async fn activate_totp(
    tx: &mut Tx,
    scope: &impl TenantKey,
    user_id: &UserId,
    step: i64,
    recovery_code_hashes: &[String],
) -> DbResult<bool> {
    let activated = Query::tenant(
        scope,
        "UPDATE tenant_users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $3 \
         WHERE tenant_id = $1 AND id = $2 AND totp_pending IS NOT NULL",
    )
    .bind(user_id.as_str())
    .bind(step)
    .execute(&mut *tx)
    .await?;
    if activated != 1 {
        return Ok(false);
    }
    delete_recovery_codes(tx, scope, user_id).await?;
    for hash in recovery_code_hashes {
        Query::tenant(
            scope,
            "INSERT INTO totp_recovery_codes (tenant_id, user_id, code_hash) VALUES ($1, $2, $3)",
        )
        .bind(user_id.as_str())
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    }
    Ok(true)
}

async fn delete_recovery_codes(tx: &mut Tx, scope: &impl TenantKey, user_id: &UserId) -> DbResult<()> {
    Query::tenant(
        scope,
        "DELETE FROM totp_recovery_codes WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(user_id.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// Removes TOTP and the recovery codes from the user.
pub async fn disable_totp(tx: &mut Tx, scope: &impl TenantKey, user_id: &UserId) -> DbResult<bool> {
    let changed = Query::tenant(
        scope,
        "UPDATE tenant_users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .execute(&mut *tx)
    .await?;
    delete_recovery_codes(tx, scope, user_id).await?;
    Ok(changed == 1)
}

/// Records that a code for `step` was used; `false` if that step (or a later one) was
/// used already, so each code works once even under concurrent sign-ins.
pub async fn use_totp_step<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    step: i64,
) -> DbResult<bool> {
    let used = Query::tenant(
        scope,
        "UPDATE tenant_users SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 \
         AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
    )
    .bind(user_id.as_str())
    .bind(step)
    .execute(on)
    .await?;
    Ok(used == 1)
}

/// Consumes an unused recovery code with this hash; `false` if there is none.
pub async fn use_recovery_code<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    code_hash: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let used = Query::tenant(
        scope,
        "UPDATE totp_recovery_codes SET used_ms = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND code_hash = $3 AND used_ms IS NULL",
    )
    .bind(user_id.as_str())
    .bind(code_hash)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(used == 1)
}

/// The language a user's mail is written in (see [`Language::choose`]).
pub async fn mail_language<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
) -> DbResult<Language> {
    let (user, tenant, time_zone): (Option<String>, Option<String>, String) = Query::tenant(
        scope,
        "SELECT u.language, t.language, t.time_zone FROM tenant_users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.tenant_id = $1 AND u.id = $2",
    )
    .bind(user_id.as_str())
    .fetch_one(on)
    .await?;
    let parse = |text: Option<String>| text.map(|t| t.parse::<Language>()).transpose();
    Ok(Language::choose(parse(user)?, parse(tenant)?, &time_zone))
}

/// Sets (or, with `None`, clears) a user's own language.
pub async fn set_language<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    language: Option<Language>,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_users SET language = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .bind(language.map(Language::as_str))
    .execute(on)
    .await?;
    Ok(())
}

/// Turns the mailing of alerts to a user on or off.
pub async fn set_alert_mail<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    alert_mail: bool,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_users SET alert_mail = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(user_id.as_str())
    .bind(alert_mail)
    .execute(on)
    .await?;
    Ok(())
}

/// Users whose TOTP secret or pending secret is stored in plain text (by a version before
/// sealing): tenant, user, secret, pending.
pub async fn plain_totp_secrets<'c>(
    on: impl Target<'c>,
) -> DbResult<Vec<(TenantId, UserId, Option<String>, Option<String>)>> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = Query::service(
        "SELECT tenant_id, id, totp_secret, totp_pending FROM tenant_users \
         WHERE (totp_secret IS NOT NULL AND totp_secret NOT LIKE 'k1:%') \
            OR (totp_pending IS NOT NULL AND totp_pending NOT LIKE 'k1:%')",
    )
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, user, secret, pending)| {
            (TenantId::from_db(tenant), UserId::from_db(user), secret, pending)
        })
        .collect())
}

/// Stores a user's sealed TOTP secrets in place of plain ones.
pub async fn store_sealed_totp<'c>(
    on: impl Target<'c>,
    tenant_id: &TenantId,
    user_id: &UserId,
    secret: Option<&str>,
    pending: Option<&str>,
) -> DbResult<()> {
    Query::service(
        "UPDATE tenant_users SET totp_secret = $3, totp_pending = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(user_id.as_str())
    .bind(secret)
    .bind(pending)
    .execute(on)
    .await?;
    Ok(())
}

/// The scoped tenant's users a message for `audience` goes to, each in their language.
pub async fn mail_recipients(
    tx: &mut Tx,
    scope: &impl TenantKey,
    audience: MailAudience,
) -> DbResult<Vec<MailRecipient>> {
    let (roles, alert_mail_only): (&[TenantRole], bool) = match audience {
        MailAudience::Alerts => (&[TenantRole::Admin, TenantRole::Operator], true),
        MailAudience::Admins => (&[TenantRole::Admin], false),
    };
    let rows: Vec<(String, Option<String>, Option<String>, String)> = Query::tenant(
        scope,
        "SELECT u.email, u.language, t.language, t.time_zone FROM tenant_users u \
         JOIN tenants t ON t.id = u.tenant_id WHERE u.tenant_id = $1 AND (u.alert_mail OR NOT $2) \
         AND u.email IS NOT NULL AND u.disabled_ms IS NULL AND u.role IN ({params}) ORDER BY u.login",
    )
    .bind(alert_mail_only)
    .bind_list(roles.iter().map(|role| Value::from(role.as_str())))
    .fetch_all(&mut *tx)
    .await?;
    let parse = |text: Option<String>| text.map(|t| t.parse::<Language>()).transpose();
    rows.into_iter()
        .map(|(email, user, tenant, zone)| {
            Ok(MailRecipient {
                email,
                language: Language::choose(parse(user)?, parse(tenant)?, &zone),
            })
        })
        .collect()
}
