//! `api_tokens`: tenant users' API tokens, stored by hash.

use super::{DbResult, Query, Target, networks_from_db};
use crate::authz::TenantKey;
use crate::ids::{TenantId, UserId};
use crate::model::{ApiTokenIdentity, ApiTokenRecord, NewApiToken};

#[derive(sqlx::FromRow)]
struct ApiTokenIdentityRow {
    id: String,
    tenant_id: String,
    user_id: String,
    login: String,
    user_role: String,
    token_role: String,
    expires_ms: i64,
    revoked_ms: Option<i64>,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_enrolled: bool,
    totp_policy: String,
}

impl ApiTokenIdentityRow {
    fn into_identity(self) -> DbResult<ApiTokenIdentity> {
        Ok(ApiTokenIdentity {
            token_id: self.id,
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.user_id),
            login: self.login,
            user_role: self.user_role.parse()?,
            token_role: self.token_role.parse()?,
            expires_ms: self.expires_ms,
            revoked: self.revoked_ms.is_some(),
            user_disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_enrolled: self.totp_enrolled,
            totp_policy: self.totp_policy.parse()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: String,
    user_id: String,
    name: String,
    role: String,
    created_ms: i64,
    expires_ms: i64,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

impl ApiTokenRow {
    fn into_record(self) -> DbResult<ApiTokenRecord> {
        Ok(ApiTokenRecord {
            id: self.id,
            user_id: UserId::from_db(self.user_id),
            name: self.name,
            role: self.role.parse()?,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            revoked_ms: self.revoked_ms,
        })
    }
}

/// Stores a new API token of a user of the scoped tenant.
pub async fn create<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    token: &NewApiToken,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO api_tokens (tenant_id, id, user_id, name, role, token_hash, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.id)
    .bind(token.user_id.as_str())
    .bind(&token.name)
    .bind(token.role.as_str())
    .bind(&token.token_hash)
    .bind(now_ms)
    .bind(token.expires_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// The API token with this hash, revoked or expired or not.
pub async fn identity<'c>(on: impl Target<'c>, token_hash: &str) -> DbResult<Option<ApiTokenIdentity>> {
    let row: Option<ApiTokenIdentityRow> = Query::service(
        "SELECT k.id, k.tenant_id, k.user_id, u.login, u.role AS user_role, k.role AS token_role, \
         k.expires_ms, k.revoked_ms, u.disabled_ms, t.status, t.admin_networks, \
         u.totp_secret IS NOT NULL AS totp_enrolled, t.totp_policy \
         FROM api_tokens k JOIN tenant_users u ON u.id = k.user_id \
         JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(on)
    .await?;
    row.map(ApiTokenIdentityRow::into_identity).transpose()
}

/// Records a use of the token.
pub async fn touch<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    token_id: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE api_tokens SET last_used_ms = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(token_id)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// Revokes the live tokens of the user whose role is above `role`: a token never
/// outlives a lowering of its owner's role, even if the role is raised again later.
pub async fn revoke_above<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    above: &[&'static str],
    now_ms: i64,
) -> DbResult<u64> {
    if above.is_empty() {
        return Ok(0);
    }
    Query::tenant(
        scope,
        "UPDATE api_tokens SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 \
         AND revoked_ms IS NULL AND role IN ({params})",
    )
    .bind(user_id.as_str())
    .bind(now_ms)
    .bind_list(above.iter().map(|role| super::Value::from(*role)))
    .execute(on)
    .await
}

/// The user's API tokens (`None`: every user's), newest first.
pub async fn list<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: Option<&UserId>,
) -> DbResult<Vec<ApiTokenRecord>> {
    let rows: Vec<ApiTokenRow> = Query::tenant(
        scope,
        "SELECT id, user_id, name, role, created_ms, expires_ms, last_used_ms, revoked_ms \
         FROM api_tokens WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
         ORDER BY created_ms DESC, id",
    )
    .bind(user_id.map(UserId::as_str))
    .fetch_all(on)
    .await?;
    rows.into_iter().map(ApiTokenRow::into_record).collect()
}

/// Revokes a token of the user (`None`: of any user of the tenant). `false` if there is
/// no such live token.
pub async fn revoke<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: Option<&UserId>,
    token_id: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let revoked = Query::tenant(
        scope,
        "UPDATE api_tokens SET revoked_ms = $4 WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
         AND id = $3 AND revoked_ms IS NULL",
    )
    .bind(user_id.map(UserId::as_str))
    .bind(token_id)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(revoked == 1)
}
