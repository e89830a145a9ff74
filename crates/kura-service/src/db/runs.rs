//! `runs`: one row per machine and scheduled slot of a plan. The agent writes its runs;
//! the server's sweep writes the slots nobody ran (`missed`) and ends runs whose agent
//! stopped reporting.

use super::{DbError, DbResult, Query, Target, Tx, from_db_int, to_db_int};
use crate::authz::TenantKey;
use crate::ids::{MachineId, PlanId, RunId, TenantId};
use crate::model::{RunCounts, RunFilter, RunRecord, RunReport, RunStatus};

type Row = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

macro_rules! columns {
    () => {
        "id, plan_id, plan_name, machine_id, status, scheduled_ms, started_ms, finished_ms, \
         updated_ms, files, bytes_read, bytes_added, snapshot_id, error"
    };
}

fn record(row: Row) -> DbResult<RunRecord> {
    let (
        id,
        plan_id,
        plan_name,
        machine_id,
        status,
        scheduled_ms,
        started_ms,
        finished_ms,
        updated_ms,
        files,
        bytes_read,
        bytes_added,
        snapshot_id,
        error,
    ) = row;
    Ok(RunRecord {
        id: RunId::from_db(id),
        plan_id: PlanId::from_db(plan_id),
        plan_name,
        machine_id: MachineId::from_db(machine_id),
        status: status.parse()?,
        scheduled_ms,
        started_ms,
        finished_ms,
        updated_ms,
        counts: RunCounts {
            files: from_db_int(files, "files")?,
            bytes_read: from_db_int(bytes_read, "bytes_read")?,
            bytes_added: from_db_int(bytes_added, "bytes_added")?,
        },
        snapshot_id,
        error,
    })
}

/// Stores a new run; a run of the same plan, machine and slot already stored is a
/// conflict.
pub async fn insert(tx: &mut Tx, scope: &impl TenantKey, run: &RunRecord) -> DbResult<()> {
    Query::tenant(
        scope,
        concat!(
            "INSERT INTO runs (tenant_id, ",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ),
    )
    .bind(run.id.as_str())
    .bind(run.plan_id.as_str())
    .bind(&run.plan_name)
    .bind(run.machine_id.as_str())
    .bind(run.status.as_str())
    .bind(run.scheduled_ms)
    .bind(run.started_ms)
    .bind(run.finished_ms)
    .bind(run.updated_ms)
    .bind(to_db_int(run.counts.files, "files")?)
    .bind(to_db_int(run.counts.bytes_read, "bytes_read")?)
    .bind(to_db_int(run.counts.bytes_added, "bytes_added")?)
    .bind(run.snapshot_id.as_deref())
    .bind(run.error.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(|err| match &err {
        DbError::Sqlx(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            DbError::Conflict("this slot of the plan has a run already".into())
        }
        _ => err,
    })?;
    Ok(())
}

/// Records a slot nobody ran, unless it has a run; `true` when it was recorded.
pub async fn insert_missed(tx: &mut Tx, scope: &impl TenantKey, run: &RunRecord) -> DbResult<bool> {
    let inserted = Query::tenant(
        scope,
        "INSERT INTO runs (tenant_id, id, plan_id, plan_name, machine_id, status, scheduled_ms, \
         updated_ms) VALUES ($1, $2, $3, $4, $5, 'missed', $6, $7) \
         ON CONFLICT (tenant_id, plan_id, machine_id, scheduled_ms) DO NOTHING",
    )
    .bind(run.id.as_str())
    .bind(run.plan_id.as_str())
    .bind(&run.plan_name)
    .bind(run.machine_id.as_str())
    .bind(run.scheduled_ms)
    .bind(run.updated_ms)
    .execute(&mut *tx)
    .await?;
    Ok(inserted > 0)
}

/// The run of one slot of a plan on one machine.
pub async fn at_slot(
    tx: &mut Tx,
    scope: &impl TenantKey,
    plan: &PlanId,
    machine: &MachineId,
    scheduled_ms: i64,
) -> DbResult<Option<RunRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM runs WHERE tenant_id = $1 AND plan_id = $2 AND machine_id = $3 AND scheduled_ms = $4"
        ),
    )
    .bind(plan.as_str())
    .bind(machine.as_str())
    .bind(scheduled_ms)
    .fetch_optional::<Row>(&mut *tx)
    .await?
    .map(record)
    .transpose()
}

/// One run of the tenant.
pub async fn get(tx: &mut Tx, scope: &impl TenantKey, id: &RunId) -> DbResult<Option<RunRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM runs WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id.as_str())
    .fetch_optional::<Row>(&mut *tx)
    .await?
    .map(record)
    .transpose()
}

/// A missed slot that its machine runs late after all.
pub async fn start_late(tx: &mut Tx, scope: &impl TenantKey, id: &RunId, now_ms: i64) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE runs SET status = 'running', started_ms = $3, updated_ms = $3 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'missed'",
    )
    .bind(id.as_str())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores an agent's report on a running run; `false` when the run has ended meanwhile.
pub async fn report(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &RunId,
    report: &RunReport,
    now_ms: i64,
) -> DbResult<bool> {
    let finished = report.status.is_final().then_some(now_ms);
    let changed = Query::tenant(
        scope,
        "UPDATE runs SET status = $3, files = $4, bytes_read = $5, bytes_added = $6, \
         snapshot_id = $7, error = $8, finished_ms = $9, updated_ms = $10 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
    )
    .bind(id.as_str())
    .bind(report.status.as_str())
    .bind(to_db_int(report.counts.files, "files")?)
    .bind(to_db_int(report.counts.bytes_read, "bytes_read")?)
    .bind(to_db_int(report.counts.bytes_added, "bytes_added")?)
    .bind(report.snapshot_id.as_deref())
    .bind(report.error.as_deref())
    .bind(finished)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    Ok(changed > 0)
}

/// The tenant's runs that match `filter`, newest slot first.
pub async fn list(tx: &mut Tx, scope: &impl TenantKey, filter: &RunFilter) -> DbResult<Vec<RunRecord>> {
    // Absent filters are bound as NULL and match everything, so one statement serves all.
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM runs WHERE tenant_id = $1 AND ($2 IS NULL OR machine_id = $2) \
             AND ($3 IS NULL OR plan_id = $3) AND ($4 IS NULL OR status = $4) \
             AND ($5 IS NULL OR scheduled_ms >= $5) AND ($6 IS NULL OR scheduled_ms < $6) \
             ORDER BY scheduled_ms DESC, id LIMIT $7"
        ),
    )
    .bind(filter.machine.as_ref().map(MachineId::as_str))
    .bind(filter.plan.as_ref().map(PlanId::as_str))
    .bind(filter.status.map(RunStatus::as_str))
    .bind(filter.from_ms)
    .bind(filter.to_ms)
    .bind(i64::from(filter.limit))
    .fetch_all::<Row>(&mut *tx)
    .await?
    .into_iter()
    .map(record)
    .collect()
}

/// The latest run of each plan on each machine of the tenant.
pub async fn latest<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Vec<RunRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM runs r WHERE tenant_id = $1 AND scheduled_ms = \
             (SELECT MAX(scheduled_ms) FROM runs l WHERE l.tenant_id = $1 \
              AND l.plan_id = r.plan_id AND l.machine_id = r.machine_id) \
             ORDER BY plan_name, machine_id"
        ),
    )
    .fetch_all::<Row>(on)
    .await?
    .into_iter()
    .map(record)
    .collect()
}

/// Ends, as failed with `error`, the runs whose agent has not reported since
/// `silent_since_ms`; answers them, each with its tenant.
pub async fn fail_silent(
    tx: &mut Tx,
    silent_since_ms: i64,
    now_ms: i64,
    error: &str,
) -> DbResult<Vec<(TenantId, RunId)>> {
    let rows: Vec<(String, String)> = Query::service(
        "UPDATE runs SET status = 'failed', error = $1, finished_ms = $2, updated_ms = $2 \
         WHERE status = 'running' AND updated_ms < $3 RETURNING tenant_id, id",
    )
    .bind(error)
    .bind(now_ms)
    .bind(silent_since_ms)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, run)| (TenantId::from_db(tenant), RunId::from_db(run)))
        .collect())
}

/// Deletes the records of runs scheduled before `before_ms`.
pub async fn prune(tx: &mut Tx, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM runs WHERE scheduled_ms < $1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
}
