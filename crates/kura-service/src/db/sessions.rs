//! `user_sessions`: portal sessions, stored by the hashes of their cookie and CSRF token.

use super::{DbResult, Query, Target, networks_from_db};
use crate::authz::TenantKey;
use crate::ids::{TenantId, UserId};
use crate::model::{NewUserSession, SessionIdentity, UserSessionRecord};

#[derive(sqlx::FromRow)]
struct SessionIdentityRow {
    id: String,
    tenant_id: String,
    user_id: String,
    login: String,
    role: String,
    csrf_hash: String,
    created_ms: i64,
    last_seen_ms: i64,
    revoked_ms: Option<i64>,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_enrolled: bool,
    totp_policy: String,
}

impl SessionIdentityRow {
    fn into_identity(self) -> DbResult<SessionIdentity> {
        Ok(SessionIdentity {
            session_id: self.id,
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.user_id),
            login: self.login,
            role: self.role.parse()?,
            csrf_hash: self.csrf_hash,
            created_ms: self.created_ms,
            last_seen_ms: self.last_seen_ms,
            revoked: self.revoked_ms.is_some(),
            user_disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_enrolled: self.totp_enrolled,
            totp_policy: self.totp_policy.parse()?,
        })
    }
}

/// Stores a new portal session of a user of the scoped tenant.
pub async fn create<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    session: &NewUserSession,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO user_sessions (tenant_id, id, user_id, session_hash, csrf_hash, source, \
         created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&session.id)
    .bind(session.user_id.as_str())
    .bind(&session.session_hash)
    .bind(&session.csrf_hash)
    .bind(&session.source)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// The session whose cookie has this hash, revoked or not.
pub async fn identity<'c>(on: impl Target<'c>, session_hash: &str) -> DbResult<Option<SessionIdentity>> {
    let row: Option<SessionIdentityRow> = Query::service(
        "SELECT s.id, s.tenant_id, s.user_id, u.login, u.role, s.csrf_hash, s.created_ms, \
         s.last_seen_ms, s.revoked_ms, u.disabled_ms, t.status, t.admin_networks, \
         u.totp_secret IS NOT NULL AS totp_enrolled, t.totp_policy \
         FROM user_sessions s JOIN tenant_users u ON u.id = s.user_id \
         JOIN tenants t ON t.id = s.tenant_id WHERE s.session_hash = $1",
    )
    .bind(session_hash)
    .fetch_optional(on)
    .await?;
    row.map(SessionIdentityRow::into_identity).transpose()
}

/// Records activity on a session (for the idle timeout).
pub async fn touch<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    session_id: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE user_sessions SET last_seen_ms = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(session_id)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// The user's sessions, newest first.
pub async fn list<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
) -> DbResult<Vec<UserSessionRecord>> {
    let rows: Vec<(String, String, i64, i64, Option<i64>)> = Query::tenant(
        scope,
        "SELECT id, source, created_ms, last_seen_ms, revoked_ms FROM user_sessions \
         WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_ms DESC, id",
    )
    .bind(user_id.as_str())
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, source, created_ms, last_seen_ms, revoked_ms)| UserSessionRecord {
                id,
                source,
                created_ms,
                last_seen_ms,
                revoked_ms,
            },
        )
        .collect())
}

/// Revokes one of the user's sessions. `false` if there is no such live session.
pub async fn revoke<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    session_id: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let revoked = Query::tenant(
        scope,
        "UPDATE user_sessions SET revoked_ms = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_ms IS NULL",
    )
    .bind(user_id.as_str())
    .bind(session_id)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(revoked == 1)
}

/// Deletes sessions that ended (signed out, idle since `idle_before_ms`, or begun before
/// `begun_before_ms`); answers how many.
pub async fn delete_ended<'c>(
    on: impl Target<'c>,
    idle_before_ms: i64,
    begun_before_ms: i64,
) -> DbResult<u64> {
    Query::service(
        "DELETE FROM user_sessions WHERE revoked_ms IS NOT NULL OR last_seen_ms < $1 OR created_ms < $2",
    )
    .bind(idle_before_ms)
    .bind(begun_before_ms)
    .execute(on)
    .await
}
