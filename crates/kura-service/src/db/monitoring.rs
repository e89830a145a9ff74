//! Service-wide counts for monitoring (`/metrics`): sessions alive, backup runs by
//! result, jobs waiting by kind, the mail outbox. Counts only: no tenant's data.

use super::{Db, DbResult, Query, Target};
use crate::ids::TenantId;

/// How many rows of each label (a status, a kind).
pub type LabelCounts = Vec<(String, u64)>;

/// Portal and console sessions neither signed out, idle since `idle_before_ms`, nor
/// begun before `begun_before_ms`.
pub async fn live_sessions(db: &Db, idle_before_ms: i64, begun_before_ms: i64) -> DbResult<(u64, u64)> {
    let (portal,): (i64,) = Query::service(
        "SELECT COUNT(*) FROM user_sessions \
         WHERE revoked_ms IS NULL AND last_seen_ms >= $1 AND created_ms >= $2",
    )
    .bind(idle_before_ms)
    .bind(begun_before_ms)
    .fetch_one(db)
    .await?;
    let (console,): (i64,) = Query::service(
        "SELECT COUNT(*) FROM operator_sessions \
         WHERE revoked_ms IS NULL AND last_seen_ms >= $1 AND created_ms >= $2",
    )
    .bind(idle_before_ms)
    .bind(begun_before_ms)
    .fetch_one(db)
    .await?;
    Ok((portal.unsigned_abs(), console.unsigned_abs()))
}

/// Recorded backup runs of every tenant by status.
pub async fn runs_by_status<'c>(on: impl Target<'c>) -> DbResult<LabelCounts> {
    grouped(on, "SELECT status, COUNT(*) FROM runs GROUP BY status").await
}

/// Queued jobs by kind.
pub async fn waiting_jobs<'c>(on: impl Target<'c>) -> DbResult<LabelCounts> {
    grouped(
        on,
        "SELECT kind, COUNT(*) FROM jobs WHERE status = 'queued' GROUP BY kind",
    )
    .await
}

/// Outbox mails by status (`pending`, `sent`, `failed`).
pub async fn outbox_by_status<'c>(on: impl Target<'c>) -> DbResult<LabelCounts> {
    grouped(on, "SELECT status, COUNT(*) FROM mail_outbox GROUP BY status").await
}

async fn grouped<'c>(on: impl Target<'c>, sql: &'static str) -> DbResult<LabelCounts> {
    let rows: Vec<(String, i64)> = Query::service(sql).fetch_all(on).await?;
    Ok(rows
        .into_iter()
        .map(|(label, count)| (label, count.unsigned_abs()))
        .collect())
}

/// Stored bytes of every tenant summed per day, from `first_day` (`YYYY-MM-DD`), oldest
/// first: each tenant's day is its own time zone's, which is close enough for a trend.
pub async fn stored_by_day<'c>(on: impl Target<'c>, first_day: &str) -> DbResult<LabelCounts> {
    let rows: Vec<(String, i64)> = Query::service(
        "SELECT day, SUM(stored_bytes) FROM usage_days WHERE day >= $1 GROUP BY day ORDER BY day",
    )
    .bind(first_day)
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, bytes)| (day, bytes.unsigned_abs()))
        .collect())
}

/// Each measured tenant's stored bytes on its newest measured day.
pub async fn measured_stored_bytes<'c>(on: impl Target<'c>) -> DbResult<Vec<(TenantId, u64)>> {
    let rows: Vec<(String, i64)> = Query::service(
        "SELECT u.tenant_id, u.stored_bytes FROM usage_days u \
         WHERE u.day = (SELECT MAX(n.day) FROM usage_days n WHERE n.tenant_id = u.tenant_id)",
    )
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, bytes)| (TenantId::from_db(tenant), bytes.unsigned_abs()))
        .collect())
}
