//! `operator_tokens`: provider staff's API tokens, stored by hash.

use super::{DbResult, Query, Target};
use crate::authz::ProviderRole;
use crate::model::OperatorTokenRecord;
use crate::secrets::random_hex;

/// Number of operator tokens ever issued (revoked ones included).
pub async fn count<'c>(on: impl Target<'c>) -> DbResult<u64> {
    let (count,): (i64,) = Query::service("SELECT COUNT(*) FROM operator_tokens")
        .fetch_one(on)
        .await?;
    Ok(count.unsigned_abs())
}

/// Stores a new operator token by its hash.
pub async fn insert<'c>(
    on: impl Target<'c>,
    name: &str,
    role: ProviderRole,
    token_hash: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::service(
        "INSERT INTO operator_tokens (id, name, token_hash, created_ms, role) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(random_hex(16))
    .bind(name)
    .bind(token_hash)
    .bind(now_ms)
    .bind(role.as_str())
    .execute(on)
    .await?;
    Ok(())
}

/// The unrevoked operator token with this hash, if any.
pub async fn by_hash<'c>(on: impl Target<'c>, token_hash: &str) -> DbResult<Option<OperatorTokenRecord>> {
    let row: Option<(String, String, String)> = Query::service(
        "SELECT id, name, role FROM operator_tokens WHERE token_hash = $1 AND revoked_ms IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(on)
    .await?;
    row.map(|(id, name, role)| {
        Ok(OperatorTokenRecord {
            id,
            name,
            role: ProviderRole::parse(&role)
                .ok_or_else(|| super::DbError::Corrupt(format!("unknown provider role {role:?}")))?,
        })
    })
    .transpose()
}

/// A shared setting of the service, if set.
pub async fn setting<'c>(on: impl Target<'c>, name: &str) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::service("SELECT value FROM service_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(value,)| value))
}

/// Sets a shared setting unless it is set already (the first server to start decides).
pub async fn init_setting<'c>(on: impl Target<'c>, name: &str, value: &str) -> DbResult<()> {
    Query::service(
        "INSERT INTO service_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(value)
    .execute(on)
    .await?;
    Ok(())
}
