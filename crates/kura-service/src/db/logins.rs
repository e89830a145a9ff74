//! Sign-in lookups and `login_failures`. Failures are counted by the login ID as typed
//! (existing or not, so a lockout reveals nothing) and by source address, service-wide.

use super::{DbResult, Query, Target, count_u32, networks_from_db};
use crate::ids::{TenantId, UserId};
use crate::model::{LoginCandidate, LoginFailures};

#[derive(sqlx::FromRow)]
struct LoginCandidateRow {
    tenant_id: String,
    id: String,
    login: String,
    password_hash: String,
    role: String,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
    totp_policy: String,
    email: Option<String>,
}

impl LoginCandidateRow {
    fn into_candidate(self) -> DbResult<LoginCandidate> {
        Ok(LoginCandidate {
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.id),
            login: self.login,
            password_hash: self.password_hash,
            role: self.role.parse()?,
            disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_secret: self.totp_secret,
            totp_last_step: self.totp_last_step,
            totp_policy: self.totp_policy.parse()?,
            email: self.email,
        })
    }
}

/// The user with this login ID, for checking a login attempt.
pub async fn candidate<'c>(on: impl Target<'c>, login: &str) -> DbResult<Option<LoginCandidate>> {
    let row: Option<LoginCandidateRow> = Query::service(
        "SELECT u.tenant_id, u.id, u.login, u.password_hash, u.role, u.disabled_ms, t.status, \
         t.admin_networks, u.totp_secret, u.totp_last_step, t.totp_policy, u.email \
         FROM tenant_users u JOIN tenants t ON t.id = u.tenant_id WHERE u.login = $1",
    )
    .bind(login)
    .fetch_optional(on)
    .await?;
    row.map(LoginCandidateRow::into_candidate).transpose()
}

/// Notes a failed attempt: of `login` (as typed; empty when it must not count against
/// the login) from `source`.
pub async fn record_failure<'c>(on: impl Target<'c>, login: &str, source: &str, now_ms: i64) -> DbResult<()> {
    Query::service("INSERT INTO login_failures (login, source, at_ms) VALUES ($1, $2, $3)")
        .bind(login)
        .bind(source)
        .bind(now_ms)
        .execute(on)
        .await?;
    Ok(())
}

/// Failed attempts of `login` and from `source` since `since_ms`.
pub async fn failures(on: &super::Db, login: &str, source: &str, since_ms: i64) -> DbResult<LoginFailures> {
    let (by_login, last_by_login_ms): (i64, Option<i64>) =
        Query::service("SELECT COUNT(*), MAX(at_ms) FROM login_failures WHERE login = $1 AND at_ms >= $2")
            .bind(login)
            .bind(since_ms)
            .fetch_one(on)
            .await?;
    let (by_source, last_by_source_ms): (i64, Option<i64>) =
        Query::service("SELECT COUNT(*), MAX(at_ms) FROM login_failures WHERE source = $1 AND at_ms >= $2")
            .bind(source)
            .bind(since_ms)
            .fetch_one(on)
            .await?;
    Ok(LoginFailures {
        by_login: count_u32(by_login),
        last_by_login_ms,
        by_source: count_u32(by_source),
        last_by_source_ms,
    })
}

/// Forgets the failed attempts of `login` (after a successful sign-in or an unlock).
pub async fn clear_failures<'c>(on: impl Target<'c>, login: &str) -> DbResult<()> {
    Query::service("DELETE FROM login_failures WHERE login = $1")
        .bind(login)
        .execute(on)
        .await?;
    Ok(())
}

/// Deletes failed sign-ins older than `before_ms`: they no longer count.
pub async fn prune_failures<'c>(on: impl Target<'c>, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM login_failures WHERE at_ms < $1")
        .bind(before_ms)
        .execute(on)
        .await
}
