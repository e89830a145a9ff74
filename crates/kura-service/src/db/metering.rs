//! `traffic_days` and the metering export: the bytes each tenant uploaded and fetched back
//! per day, and with `usage_days` the rows billing reads for a range of days.

use super::{DbResult, Query, Target, from_db_int, to_db_int};
use crate::authz::TenantKey;
use crate::ids::TenantId;
use crate::model::MeterRow;

/// Which way bytes moved through the vault protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Packs received from an agent.
    Uploaded,
    /// Blobs sent back to an agent (a restore's egress).
    Restored,
}

/// Adds `bytes` to the tenant's count of `day`.
pub async fn add_traffic<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    day: &str,
    traffic: Traffic,
    bytes: u64,
) -> DbResult<()> {
    // Only one of two fixed statements is chosen; nothing is spliced in.
    let sql = match traffic {
        Traffic::Uploaded => {
            "INSERT INTO traffic_days (tenant_id, day, uploaded_bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET uploaded_bytes = traffic_days.uploaded_bytes + excluded.uploaded_bytes"
        }
        Traffic::Restored => {
            "INSERT INTO traffic_days (tenant_id, day, restored_bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET restored_bytes = traffic_days.restored_bytes + excluded.restored_bytes"
        }
    };
    Query::tenant(scope, sql)
        .bind(day)
        .bind(to_db_int(bytes, "bytes")?)
        .execute(on)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct MeterDbRow {
    day: String,
    tenant_id: String,
    service_code: String,
    stored_bytes: Option<i64>,
    logical_bytes: Option<i64>,
    machines: Option<i64>,
    snapshots: Option<i64>,
    uploaded_bytes: Option<i64>,
    restored_bytes: Option<i64>,
}

fn count(value: Option<i64>, what: &str) -> DbResult<u64> {
    from_db_int(value.unwrap_or(0), what)
}

/// The metered days from `from` to `to` (`YYYY-MM-DD`, both inclusive) of every tenant, or
/// of one: a row for each day with a measurement or with traffic, by day and service code.
pub async fn export<'c>(
    on: impl Target<'c>,
    from: &str,
    to: &str,
    tenant: Option<&TenantId>,
) -> DbResult<Vec<MeterRow>> {
    let rows: Vec<MeterDbRow> = Query::service(
        "SELECT d.day, d.tenant_id, t.service_code, u.stored_bytes, u.logical_bytes, u.machines, \
         u.snapshots, x.uploaded_bytes, x.restored_bytes \
         FROM (SELECT tenant_id, day FROM usage_days WHERE day >= $1 AND day <= $2 \
               UNION SELECT tenant_id, day FROM traffic_days WHERE day >= $1 AND day <= $2) d \
         JOIN tenants t ON t.id = d.tenant_id \
         LEFT JOIN usage_days u ON u.tenant_id = d.tenant_id AND u.day = d.day \
         LEFT JOIN traffic_days x ON x.tenant_id = d.tenant_id AND x.day = d.day \
         WHERE ($3 IS NULL OR d.tenant_id = $3) \
         ORDER BY d.day, t.service_code",
    )
    .bind(from)
    .bind(to)
    .bind(tenant.map(TenantId::as_str))
    .fetch_all(on)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(MeterRow {
                day: row.day,
                tenant_id: TenantId::from_db(row.tenant_id),
                service_code: row.service_code,
                stored_bytes: count(row.stored_bytes, "stored bytes")?,
                logical_bytes: count(row.logical_bytes, "logical bytes")?,
                machines: count(row.machines, "machine count")?,
                snapshots: count(row.snapshots, "snapshot count")?,
                uploaded_bytes: count(row.uploaded_bytes, "uploaded bytes")?,
                restored_bytes: count(row.restored_bytes, "restored bytes")?,
            })
        })
        .collect()
}
