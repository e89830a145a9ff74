//! `tenant_terminations` and `deletion_records`: a terminated tenant's purge, the erasure
//! of its rows, and the signed records purges leave.

use super::{DbResult, Query, Target, Tx, from_db_int, to_db_int};
use crate::authz::{TenantKey, TenantScope};
use crate::ids::{DeletionId, TenantId};
use crate::model::{DeletionSummary, PurgeCounts, TenantStatus, TerminationRecord};

#[derive(sqlx::FromRow)]
struct TerminationRow {
    tenant_id: String,
    status_before: String,
    terminated_ms: i64,
    terminated_by: String,
    purge_due_ms: i64,
    job_id: String,
    purge_started_ms: Option<i64>,
    objects: Option<i64>,
    bytes: Option<i64>,
    snapshots: Option<i64>,
    purged_ms: Option<i64>,
}

impl TerminationRow {
    fn into_record(self) -> DbResult<TerminationRecord> {
        let counted = match (self.objects, self.bytes, self.snapshots) {
            (Some(objects), Some(bytes), Some(snapshots)) => Some(PurgeCounts {
                objects: from_db_int(objects, "objects")?,
                bytes: from_db_int(bytes, "bytes")?,
                snapshots: from_db_int(snapshots, "snapshots")?,
            }),
            _ => None,
        };
        Ok(TerminationRecord {
            tenant_id: TenantId::from_db(self.tenant_id),
            status_before: self.status_before.parse()?,
            terminated_ms: self.terminated_ms,
            terminated_by: self.terminated_by,
            purge_due_ms: self.purge_due_ms,
            job_id: self.job_id,
            purge_started_ms: self.purge_started_ms,
            counted,
            purged_ms: self.purged_ms,
        })
    }
}

/// A new termination.
pub struct NewTermination<'a> {
    pub status_before: TenantStatus,
    pub terminated_by: &'a str,
    pub purge_due_ms: i64,
    pub job_id: &'a str,
}

pub async fn insert(
    tx: &mut Tx,
    scope: &impl TenantKey,
    new: &NewTermination<'_>,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO tenant_terminations (tenant_id, status_before, terminated_ms, terminated_by, \
         purge_due_ms, job_id) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new.status_before.as_str())
    .bind(now_ms)
    .bind(new.terminated_by)
    .bind(new.purge_due_ms)
    .bind(new.job_id)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn get<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Option<TerminationRecord>> {
    let row: Option<TerminationRow> = Query::tenant(
        scope,
        "SELECT tenant_id, status_before, terminated_ms, terminated_by, purge_due_ms, job_id, \
         purge_started_ms, objects, bytes, snapshots, purged_ms \
         FROM tenant_terminations WHERE tenant_id = $1",
    )
    .fetch_optional(on)
    .await?;
    row.map(TerminationRow::into_record).transpose()
}

pub async fn delete(tx: &mut Tx, scope: &impl TenantKey) -> DbResult<()> {
    Query::tenant(scope, "DELETE FROM tenant_terminations WHERE tenant_id = $1")
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn set_purge_due(tx: &mut Tx, scope: &impl TenantKey, due_ms: i64) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_terminations SET purge_due_ms = $2 WHERE tenant_id = $1",
    )
    .bind(due_ms)
    .execute(tx)
    .await?;
    Ok(())
}

/// Ends every portal session of the tenant; answers how many.
pub async fn end_sessions(tx: &mut Tx, scope: &impl TenantKey) -> DbResult<u64> {
    Query::tenant(scope, "DELETE FROM user_sessions WHERE tenant_id = $1")
        .execute(tx)
        .await
}

/// Tenants whose purge run failed (or vanished) before `failed_before_ms`, with that
/// run's id: terminated, not purged, and nothing queued or running for it.
pub async fn stalled_purges<'c>(
    on: impl Target<'c>,
    failed_before_ms: i64,
) -> DbResult<Vec<(TenantId, String)>> {
    let rows: Vec<(String, String)> = Query::service(
        "SELECT t.tenant_id, t.job_id FROM tenant_terminations t LEFT JOIN jobs j ON j.id = t.job_id \
         WHERE t.purged_ms IS NULL AND (j.id IS NULL OR (j.status = 'failed' AND j.finished_ms < $1))",
    )
    .bind(failed_before_ms)
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, job)| (TenantId::from_db(tenant), job))
        .collect())
}

/// Points the termination at a new purge run, if it still names `old_job`.
pub async fn replace_job(tx: &mut Tx, scope: &TenantScope, old_job: &str, new_job: &str) -> DbResult<bool> {
    let changed = Query::tenant(
        scope,
        "UPDATE tenant_terminations SET job_id = $3 WHERE tenant_id = $1 AND job_id = $2",
    )
    .bind(old_job)
    .bind(new_job)
    .execute(tx)
    .await?;
    Ok(changed == 1)
}

/// Notes what the purge found before it deleted anything.
pub async fn start_purge<'c>(
    on: impl Target<'c>,
    scope: &TenantScope,
    counts: &PurgeCounts,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_terminations SET purge_started_ms = $2, objects = $3, bytes = $4, snapshots = $5 \
         WHERE tenant_id = $1",
    )
    .bind(now_ms)
    .bind(to_db_int(counts.objects, "objects")?)
    .bind(to_db_int(counts.bytes, "bytes")?)
    .bind(to_db_int(counts.snapshots, "snapshots")?)
    .execute(on)
    .await?;
    Ok(())
}

pub async fn finish_purge(tx: &mut Tx, scope: &TenantScope, now_ms: i64) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE tenant_terminations SET purged_ms = $2 WHERE tenant_id = $1",
    )
    .bind(now_ms)
    .execute(tx)
    .await?;
    Ok(())
}

/// Every table holding a tenant's own rows, children before parents; the purge deletes
/// them all. Kept: the tenant row (status `terminated`), its event log, its jobs, its
/// usage history (the provider's billing facts, no personal data), its termination and
/// its deletion record.
const TENANT_TABLES: [&str; 21] = [
    "notice_reads",
    "support_messages",
    "support_requests",
    "totp_recovery_codes",
    "password_resets",
    "user_sessions",
    "api_tokens",
    "alerts",
    "drills",
    "restores",
    "runs",
    "plan_machines",
    "plans",
    "snapshot_owners",
    "upload_sessions",
    "agent_credentials",
    "registration_tokens",
    "mail_outbox",
    "notice_tenants",
    "machines",
    "tenant_users",
];

/// What erasing a tenant's rows deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErasedRows {
    pub users: u64,
    pub machines: u64,
    /// In every table together.
    pub rows: u64,
}

/// Deletes every row of the tenant's own (see [`TENANT_TABLES`]) and its queued jobs but
/// `keep_job` (the purge itself: nothing is left for the others to do).
pub async fn erase_tenant_rows(tx: &mut Tx, scope: &TenantScope, keep_job: &str) -> DbResult<ErasedRows> {
    let mut erased = ErasedRows::default();
    for table in TENANT_TABLES {
        // Only names from the list above are spliced in.
        let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant_id = $1"));
        let deleted = Query::tenant(scope, sql).execute(&mut *tx).await?;
        match table {
            "tenant_users" => erased.users = deleted,
            "machines" => erased.machines = deleted,
            _ => {}
        }
        erased.rows += deleted;
    }
    Query::tenant(
        scope,
        "DELETE FROM jobs WHERE tenant_id = $1 AND status = 'queued' AND id <> $2",
    )
    .bind(keep_job)
    .execute(&mut *tx)
    .await?;
    Ok(erased)
}

/// Stores a signed deletion record.
pub async fn insert_record(
    tx: &mut Tx,
    scope: &TenantScope,
    id: &DeletionId,
    service_code: &str,
    record: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "INSERT INTO deletion_records (tenant_id, id, service_code, created_ms, record) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(service_code)
    .bind(now_ms)
    .bind(record)
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    tenant_id: String,
    service_code: String,
    created_ms: i64,
}

impl SummaryRow {
    fn into_summary(self) -> DeletionSummary {
        DeletionSummary {
            id: DeletionId::from_db(self.id),
            tenant_id: TenantId::from_db(self.tenant_id),
            service_code: self.service_code,
            created_ms: self.created_ms,
        }
    }
}

/// Every deletion record, newest first.
pub async fn list_records<'c>(on: impl Target<'c>) -> DbResult<Vec<DeletionSummary>> {
    let rows: Vec<SummaryRow> = Query::service(
        "SELECT id, tenant_id, service_code, created_ms FROM deletion_records ORDER BY created_ms DESC, id",
    )
    .fetch_all(on)
    .await?;
    Ok(rows.into_iter().map(SummaryRow::into_summary).collect())
}

/// The newest deletion record of one tenant, if its data was purged.
pub async fn record_of<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Option<DeletionSummary>> {
    let row: Option<SummaryRow> = Query::tenant(
        scope,
        "SELECT id, tenant_id, service_code, created_ms FROM deletion_records WHERE tenant_id = $1 \
         ORDER BY created_ms DESC, id LIMIT 1",
    )
    .fetch_optional(on)
    .await?;
    Ok(row.map(SummaryRow::into_summary))
}

/// One signed record as stored (JSON).
pub async fn record<'c>(on: impl Target<'c>, id: &DeletionId) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::service("SELECT record FROM deletion_records WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(on)
        .await?;
    Ok(row.map(|(record,)| record))
}
