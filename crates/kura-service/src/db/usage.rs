//! `usage_days`: a tenant's usage, one row per day in its time zone (the day's last
//! measurement by the metering job), for the portal's chart and `GET /api/v1/usage`.

use super::{DbResult, Query, Target, from_db_int, to_db_int};
use crate::authz::TenantScope;
use crate::model::UsageDay;

/// Writes (or overwrites) the row of `usage.day`.
pub async fn record_day<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    usage: &UsageDay,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO usage_days (tenant_id, day, stored_bytes, snapshots, machines, measured_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, day) DO UPDATE SET \
         stored_bytes = excluded.stored_bytes, snapshots = excluded.snapshots, \
         machines = excluded.machines, measured_ms = excluded.measured_ms",
    )
    .bind(usage.day.as_str())
    .bind(to_db_int(usage.stored_bytes, "stored bytes")?)
    .bind(to_db_int(usage.snapshots, "snapshot count")?)
    .bind(to_db_int(usage.machines, "machine count")?)
    .bind(now_ms)
    .execute(on)
    .await?;
    Ok(())
}

/// Notes the logical size of the live snapshots (before dedup) on the row of `day`.
pub async fn set_logical<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    day: &str,
    logical_bytes: u64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE usage_days SET logical_bytes = $3 WHERE tenant_id = $1 AND day = $2",
    )
    .bind(day)
    .bind(to_db_int(logical_bytes, "logical bytes")?)
    .execute(on)
    .await?;
    Ok(())
}

/// The rows of the days from `first_day` (`YYYY-MM-DD`, inclusive), oldest first.
pub async fn history<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    first_day: &str,
) -> DbResult<Vec<UsageDay>> {
    let rows: Vec<(String, i64, i64, i64)> = Query::tenant(
        scope,
        "SELECT day, stored_bytes, snapshots, machines FROM usage_days \
         WHERE tenant_id = $1 AND day >= $2 ORDER BY day",
    )
    .bind(first_day)
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|(day, stored_bytes, snapshots, machines)| {
            Ok(UsageDay {
                day,
                stored_bytes: from_db_int(stored_bytes, "stored bytes")?,
                snapshots: from_db_int(snapshots, "snapshot count")?,
                machines: from_db_int(machines, "machine count")?,
            })
        })
        .collect()
}
