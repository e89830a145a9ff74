//! `restores`: restore jobs, asked for by users and performed by a machine's agent
//! daemon; and the committed snapshot a job may name.

use super::{DbResult, Query, Target, Tx, from_db_int, to_db_int};
use crate::authz::TenantKey;
use crate::ids::{MachineId, RestoreId};
use crate::model::{RestoreRecord, RestoreReport};

macro_rules! columns {
    () => {
        "id, machine_id, snapshot_id, snapshot_machine_id, target, paths, overwrite, status, \
         requested_by, queued_ms, started_ms, finished_ms, updated_ms, files, bytes, error"
    };
}

#[derive(sqlx::FromRow)]
struct RestoreRow {
    id: String,
    machine_id: String,
    snapshot_id: String,
    snapshot_machine_id: String,
    target: String,
    paths: String,
    overwrite: bool,
    status: String,
    requested_by: String,
    queued_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
    updated_ms: i64,
    files: i64,
    bytes: i64,
    error: Option<String>,
}

impl RestoreRow {
    fn into_record(self) -> DbResult<RestoreRecord> {
        Ok(RestoreRecord {
            id: RestoreId::from_db(self.id),
            machine_id: MachineId::from_db(self.machine_id),
            snapshot_id: self.snapshot_id,
            snapshot_machine_id: MachineId::from_db(self.snapshot_machine_id),
            target: self.target,
            paths: serde_json::from_str(&self.paths)
                .map_err(|err| super::DbError::Corrupt(format!("restore paths: {err}")))?,
            overwrite: self.overwrite,
            status: self.status.parse()?,
            requested_by: self.requested_by,
            queued_ms: self.queued_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            updated_ms: self.updated_ms,
            files: from_db_int(self.files, "files")?,
            bytes: from_db_int(self.bytes, "bytes")?,
            error: self.error,
        })
    }
}

/// Stores a new job.
pub async fn insert(tx: &mut Tx, scope: &impl TenantKey, job: &RestoreRecord) -> DbResult<()> {
    Query::tenant(
        scope,
        concat!(
            "INSERT INTO restores (tenant_id, ",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ),
    )
    .bind(job.id.as_str())
    .bind(job.machine_id.as_str())
    .bind(&job.snapshot_id)
    .bind(job.snapshot_machine_id.as_str())
    .bind(&job.target)
    .bind(serde_json::to_string(&job.paths).expect("strings"))
    .bind(job.overwrite)
    .bind(job.status.as_str())
    .bind(&job.requested_by)
    .bind(job.queued_ms)
    .bind(job.started_ms)
    .bind(job.finished_ms)
    .bind(job.updated_ms)
    .bind(to_db_int(job.files, "files")?)
    .bind(to_db_int(job.bytes, "bytes")?)
    .bind(job.error.as_deref())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One job of the tenant.
pub async fn get<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    id: &RestoreId,
) -> DbResult<Option<RestoreRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM restores WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id.as_str())
    .fetch_optional::<RestoreRow>(on)
    .await?
    .map(RestoreRow::into_record)
    .transpose()
}

/// The tenant's jobs, newest first; of one snapshot, or of one machine, if given.
pub async fn list<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    snapshot: Option<&str>,
    machine: Option<&MachineId>,
    limit: u32,
) -> DbResult<Vec<RestoreRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM restores WHERE tenant_id = $1 AND ($2 IS NULL OR snapshot_id = $2) \
             AND ($3 IS NULL OR machine_id = $3) ORDER BY queued_ms DESC, id LIMIT $4"
        ),
    )
    .bind(snapshot)
    .bind(machine.map(MachineId::as_str))
    .bind(i64::from(limit))
    .fetch_all::<RestoreRow>(on)
    .await?
    .into_iter()
    .map(RestoreRow::into_record)
    .collect()
}

/// A machine's queued jobs, oldest first.
pub async fn queued_for<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    machine: &MachineId,
) -> DbResult<Vec<RestoreRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM restores WHERE tenant_id = $1 AND machine_id = $2 AND status = 'queued' \
             ORDER BY queued_ms, id"
        ),
    )
    .bind(machine.as_str())
    .fetch_all::<RestoreRow>(on)
    .await?
    .into_iter()
    .map(RestoreRow::into_record)
    .collect()
}

/// Snapshots (hex) a machine may read for its queued or running jobs.
pub async fn granted<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    machine: &MachineId,
) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = Query::tenant(
        scope,
        "SELECT snapshot_id FROM restores WHERE tenant_id = $1 AND machine_id = $2 \
         AND status IN ('queued', 'running')",
    )
    .bind(machine.as_str())
    .fetch_all(on)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Stores a report: `running` starts the job (or counts progress), a final status ends it.
pub async fn report(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &RestoreId,
    report: &RestoreReport,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE restores SET status = $3, files = $4, bytes = $5, error = $6, updated_ms = $7, \
         started_ms = COALESCE(started_ms, $7), finished_ms = $8 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.as_str())
    .bind(report.status.as_str())
    .bind(to_db_int(report.files, "files")?)
    .bind(to_db_int(report.bytes, "bytes")?)
    .bind(report.error.as_deref())
    .bind(now_ms)
    .bind(report.status.is_final().then_some(now_ms))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Fails the running jobs whose machine has not reported since `silent_since_ms`;
/// answers how many.
pub async fn fail_silent(tx: &mut Tx, silent_since_ms: i64, now_ms: i64, error: &str) -> DbResult<u64> {
    Query::service(
        "UPDATE restores SET status = 'failed', error = $1, finished_ms = $2, updated_ms = $2 \
         WHERE status = 'running' AND updated_ms < $3",
    )
    .bind(error)
    .bind(now_ms)
    .bind(silent_since_ms)
    .execute(&mut *tx)
    .await
}

/// The machine that owns a committed snapshot of the tenant, and the snapshot's kind.
pub async fn committed_snapshot<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    snapshot_id: &str,
) -> DbResult<Option<(MachineId, Option<String>)>> {
    let row: Option<(String, Option<String>)> = Query::tenant(
        scope,
        "SELECT machine_id, kind FROM snapshot_owners WHERE tenant_id = $1 AND snapshot_id = $2 AND committed",
    )
    .bind(snapshot_id)
    .fetch_optional(on)
    .await?;
    Ok(row.map(|(machine, kind)| (MachineId::from_db(machine), kind)))
}

/// Deletes the records of jobs queued before `before_ms`.
pub async fn prune(tx: &mut Tx, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM restores WHERE queued_ms < $1 AND status IN ('succeeded', 'failed')")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
}
