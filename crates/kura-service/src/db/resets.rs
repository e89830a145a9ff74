//! `password_resets`: one-time reset links, stored by the hash of their token.

use super::{DbResult, Query, Target, count_u32};
use crate::authz::TenantKey;
use crate::ids::{TenantId, UserId};

/// Stores a password reset link (by its hash) for a user.
pub async fn create<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    token_hash: &str,
    now_ms: i64,
    expires_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO password_resets (tenant_id, token_hash, user_id, created_ms, expires_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id.as_str())
    .bind(now_ms)
    .bind(expires_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// How many reset links the user was sent since `since_ms`.
pub async fn count_since<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    user_id: &UserId,
    since_ms: i64,
) -> DbResult<u32> {
    let (count,): (i64,) = Query::tenant(
        scope,
        "SELECT COUNT(*) FROM password_resets WHERE tenant_id = $1 AND user_id = $2 AND created_ms >= $3",
    )
    .bind(user_id.as_str())
    .bind(since_ms)
    .fetch_one(on)
    .await?;
    Ok(count_u32(count))
}

/// The user an unused, unexpired reset link belongs to, with their login ID.
pub async fn holder<'c>(
    on: impl Target<'c>,
    token_hash: &str,
    now_ms: i64,
) -> DbResult<Option<(TenantId, UserId, String)>> {
    let row: Option<(String, String, String)> = Query::service(
        "SELECT r.tenant_id, r.user_id, u.login FROM password_resets r \
         JOIN tenant_users u ON u.id = r.user_id \
         WHERE r.token_hash = $1 AND r.used_ms IS NULL AND r.expires_ms > $2",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(on)
    .await?;
    Ok(
        row.map(|(tenant_id, user_id, login)| {
            (TenantId::from_db(tenant_id), UserId::from_db(user_id), login)
        }),
    )
}

/// Uses up a reset link; `false` if it was used (or expired) meanwhile.
pub async fn consume<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    token_hash: &str,
    now_ms: i64,
) -> DbResult<bool> {
    let used = Query::tenant(
        scope,
        "UPDATE password_resets SET used_ms = $3 \
         WHERE tenant_id = $1 AND token_hash = $2 AND used_ms IS NULL AND expires_ms > $3",
    )
    .bind(token_hash)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(used == 1)
}

/// Deletes reset links made before `before_ms` that were used or have expired (recent
/// ones still count towards the "one mail per interval" rule).
pub async fn delete_spent<'c>(on: impl Target<'c>, before_ms: i64, now_ms: i64) -> DbResult<u64> {
    Query::service(
        "DELETE FROM password_resets WHERE created_ms < $1 AND (used_ms IS NOT NULL OR expires_ms <= $2)",
    )
    .bind(before_ms)
    .bind(now_ms)
    .execute(on)
    .await
}
