//! `drills`: restore drills, one row each, written by the machine's agent daemon as it
//! starts and ends a drill, and by the server when a drill stops reporting.

use super::{DbError, DbResult, Query, Target, Tx, from_db_int, to_db_int};
use crate::authz::TenantKey;
use crate::ids::{DrillId, MachineId, PlanId};
use crate::model::{DrillCounts, DrillFilter, DrillRecord, DrillReport, DrillStatus};

macro_rules! columns {
    () => {
        "id, plan_id, plan_name, machine_id, snapshot_id, status, started_ms, finished_ms, \
         updated_ms, files, bytes, mismatches, error"
    };
}

#[derive(sqlx::FromRow)]
struct DrillRow {
    id: String,
    plan_id: String,
    plan_name: String,
    machine_id: String,
    snapshot_id: String,
    status: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    updated_ms: i64,
    files: i64,
    bytes: i64,
    mismatches: i64,
    error: Option<String>,
}

impl DrillRow {
    fn into_record(self) -> DbResult<DrillRecord> {
        Ok(DrillRecord {
            id: DrillId::from_db(self.id),
            plan_id: PlanId::from_db(self.plan_id),
            plan_name: self.plan_name,
            machine_id: MachineId::from_db(self.machine_id),
            snapshot_id: self.snapshot_id,
            status: self.status.parse()?,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            updated_ms: self.updated_ms,
            counts: DrillCounts {
                files: from_db_int(self.files, "files")?,
                bytes: from_db_int(self.bytes, "bytes")?,
                mismatches: from_db_int(self.mismatches, "mismatches")?,
            },
            error: self.error,
        })
    }
}

/// Stores a drill that starts; a plan already drilling on the machine is a conflict.
pub async fn insert(tx: &mut Tx, scope: &impl TenantKey, drill: &DrillRecord) -> DbResult<()> {
    Query::tenant(
        scope,
        concat!(
            "INSERT INTO drills (tenant_id, ",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ),
    )
    .bind(drill.id.as_str())
    .bind(drill.plan_id.as_str())
    .bind(&drill.plan_name)
    .bind(drill.machine_id.as_str())
    .bind(&drill.snapshot_id)
    .bind(drill.status.as_str())
    .bind(drill.started_ms)
    .bind(drill.finished_ms)
    .bind(drill.updated_ms)
    .bind(to_db_int(drill.counts.files, "files")?)
    .bind(to_db_int(drill.counts.bytes, "bytes")?)
    .bind(to_db_int(drill.counts.mismatches, "mismatches")?)
    .bind(drill.error.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(|err| match err {
        DbError::Sqlx(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            DbError::Conflict(format!(
                "a drill of plan {:?} is running on this machine already",
                drill.plan_name
            ))
        }
        other => other,
    })?;
    Ok(())
}

/// One drill of the tenant.
pub async fn get<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    id: &DrillId,
) -> DbResult<Option<DrillRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM drills WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id.as_str())
    .fetch_optional::<DrillRow>(on)
    .await?
    .map(DrillRow::into_record)
    .transpose()
}

/// The tenant's drills that match `filter`, the latest first.
pub async fn list<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    filter: &DrillFilter,
) -> DbResult<Vec<DrillRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM drills WHERE tenant_id = $1 AND ($2 IS NULL OR plan_id = $2) \
             AND ($3 IS NULL OR machine_id = $3) AND ($4 IS NULL OR status = $4) \
             ORDER BY started_ms DESC, id LIMIT $5"
        ),
    )
    .bind(filter.plan.as_ref().map(PlanId::as_str))
    .bind(filter.machine.as_ref().map(MachineId::as_str))
    .bind(filter.status.map(DrillStatus::as_str))
    .bind(i64::from(filter.limit))
    .fetch_all::<DrillRow>(on)
    .await?
    .into_iter()
    .map(DrillRow::into_record)
    .collect()
}

/// The latest drill of a plan on a machine.
pub async fn last_of(
    tx: &mut Tx,
    scope: &impl TenantKey,
    plan: &PlanId,
    machine: &MachineId,
) -> DbResult<Option<DrillRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM drills WHERE tenant_id = $1 AND plan_id = $2 AND machine_id = $3 \
             ORDER BY started_ms DESC, id LIMIT 1"
        ),
    )
    .bind(plan.as_str())
    .bind(machine.as_str())
    .fetch_optional::<DrillRow>(&mut *tx)
    .await?
    .map(DrillRow::into_record)
    .transpose()
}

/// Whether the machine is doing anything the service asked of it: a backup running, a
/// restore job queued or running, or a drill running.
pub async fn machine_busy(tx: &mut Tx, scope: &impl TenantKey, machine: &MachineId) -> DbResult<bool> {
    let row: Option<(String,)> = Query::tenant(
        scope,
        "SELECT id FROM runs WHERE tenant_id = $1 AND machine_id = $2 AND status = 'running' \
         UNION ALL SELECT id FROM restores WHERE tenant_id = $1 AND machine_id = $2 \
         AND status IN ('queued', 'running') \
         UNION ALL SELECT id FROM drills WHERE tenant_id = $1 AND machine_id = $2 AND status = 'running' \
         LIMIT 1",
    )
    .bind(machine.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.is_some())
}

/// The snapshot of the latest run of a plan on a machine that saved one still committed.
pub async fn latest_snapshot(
    tx: &mut Tx,
    scope: &impl TenantKey,
    plan: &PlanId,
    machine: &MachineId,
) -> DbResult<Option<String>> {
    let row: Option<(String,)> = Query::tenant(
        scope,
        "SELECT r.snapshot_id FROM runs r JOIN snapshot_owners s ON s.tenant_id = r.tenant_id \
         AND s.snapshot_id = r.snapshot_id AND s.machine_id = r.machine_id AND s.committed \
         WHERE r.tenant_id = $1 AND r.plan_id = $2 AND r.machine_id = $3 \
         AND r.status IN ('succeeded', 'partial') ORDER BY r.finished_ms DESC, r.id LIMIT 1",
    )
    .bind(plan.as_str())
    .bind(machine.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Stores a report: counts while running, then the outcome.
pub async fn report(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &DrillId,
    report: &DrillReport,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE drills SET status = $3, files = $4, bytes = $5, mismatches = $6, error = $7, \
         updated_ms = $8, finished_ms = $9 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.as_str())
    .bind(report.status.as_str())
    .bind(to_db_int(report.counts.files, "files")?)
    .bind(to_db_int(report.counts.bytes, "bytes")?)
    .bind(to_db_int(report.counts.mismatches, "mismatches")?)
    .bind(report.error.as_deref())
    .bind(now_ms)
    .bind(report.status.is_final().then_some(now_ms))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks abandoned the running drills whose machine has not reported since
/// `silent_since_ms`; answers how many.
pub async fn abandon_silent(tx: &mut Tx, silent_since_ms: i64, now_ms: i64, error: &str) -> DbResult<u64> {
    Query::service(
        "UPDATE drills SET status = 'abandoned', error = $1, finished_ms = $2, updated_ms = $2 \
         WHERE status = 'running' AND updated_ms < $3",
    )
    .bind(error)
    .bind(now_ms)
    .bind(silent_since_ms)
    .execute(&mut *tx)
    .await
}

/// Deletes the records of drills started before `before_ms`.
pub async fn prune(tx: &mut Tx, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM drills WHERE started_ms < $1 AND status <> 'running'")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
}
