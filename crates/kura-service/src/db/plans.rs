//! `plans` and `plan_machines`: a tenant's protection plans and the machines that run
//! them. Lists, sources and retention are stored as JSON text (portable, and readable in
//! a dump).

use std::collections::HashMap;

use super::{DbError, DbResult, Query, Target, Tx, from_db_int, to_db_int};
use crate::authz::TenantKey;
use crate::ids::{MachineId, PlanId, TenantId};
use crate::model::{BandwidthLimit, DrillFrequency, PlanKind, PlanRecord, PlanRetention, PlanSpec};

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    bool,
    i64,
    i64,
    Option<String>,
);

/// The columns of [`Row`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, name, kind, sources, excludes, schedule, retention, bandwidth_limit, pre_hook, \
         post_hook, enabled, created_ms, updated_ms, drill"
    };
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> DbResult<T> {
    serde_json::from_str(text).map_err(|err| DbError::Corrupt(format!("plan {what} {text:?}: {err}")))
}

fn record(row: Row, machines: Vec<MachineId>) -> DbResult<PlanRecord> {
    let (
        id,
        name,
        kind,
        sources,
        excludes,
        schedule,
        retention,
        limit,
        pre_hook,
        post_hook,
        enabled,
        created_ms,
        updated_ms,
        drill,
    ) = row;
    Ok(PlanRecord {
        id: PlanId::from_db(id),
        spec: PlanSpec {
            name,
            kind: PlanKind::parse(&kind).ok_or_else(|| DbError::Corrupt(format!("plan kind {kind:?}")))?,
            sources: json(&sources, "sources")?,
            excludes: json(&excludes, "excludes")?,
            schedule,
            retention: json::<PlanRetention>(&retention, "retention")?,
            bandwidth_limit: limit
                .map(|bytes| from_db_int(bytes, "bandwidth_limit").map(BandwidthLimit))
                .transpose()?,
            pre_hook,
            post_hook,
            enabled,
            drill: drill
                .map(|text| {
                    DrillFrequency::parse(&text)
                        .ok_or_else(|| DbError::Corrupt(format!("plan drill {text:?}")))
                })
                .transpose()?,
            machines,
        },
        created_ms,
        updated_ms,
    })
}

/// The machines of each plan of the tenant (or of one plan).
async fn assignments<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    plan: Option<&PlanId>,
) -> DbResult<HashMap<String, Vec<MachineId>>> {
    let rows: Vec<(String, String)> = match plan {
        Some(plan) => {
            Query::tenant(
                scope,
                "SELECT plan_id, machine_id FROM plan_machines WHERE tenant_id = $1 AND plan_id = $2 \
             ORDER BY machine_id",
            )
            .bind(plan.as_str())
            .fetch_all(on)
            .await?
        }
        None => {
            Query::tenant(
                scope,
                "SELECT plan_id, machine_id FROM plan_machines WHERE tenant_id = $1 ORDER BY machine_id",
            )
            .fetch_all(on)
            .await?
        }
    };
    let mut out: HashMap<String, Vec<MachineId>> = HashMap::new();
    for (plan_id, machine_id) in rows {
        out.entry(plan_id)
            .or_default()
            .push(MachineId::from_db(machine_id));
    }
    Ok(out)
}

/// The tenant's plans by name.
pub async fn list(tx: &mut Tx, scope: &impl TenantKey) -> DbResult<Vec<PlanRecord>> {
    let rows: Vec<Row> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM plans WHERE tenant_id = $1 ORDER BY name, id"
        ),
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut machines = assignments(&mut *tx, scope, None).await?;
    rows.into_iter()
        .map(|row| {
            let assigned = machines.remove(&row.0).unwrap_or_default();
            record(row, assigned)
        })
        .collect()
}

/// The plans assigned to one machine of the tenant, by name, each with the time the
/// machine was given it (their machine lists are left empty: the machine knows who it is).
pub async fn of_machine(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine: &MachineId,
) -> DbResult<Vec<(PlanRecord, i64)>> {
    let rows: Vec<Row> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM plans WHERE tenant_id = $1 AND id IN \
             (SELECT plan_id FROM plan_machines WHERE tenant_id = $1 AND machine_id = $2) ORDER BY name, id"
        ),
    )
    .bind(machine.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let since: HashMap<String, i64> = Query::tenant(
        scope,
        "SELECT plan_id, assigned_ms FROM plan_machines WHERE tenant_id = $1 AND machine_id = $2",
    )
    .bind(machine.as_str())
    .fetch_all::<(String, i64)>(&mut *tx)
    .await?
    .into_iter()
    .collect();
    rows.into_iter()
        .map(|row| {
            let assigned_ms = since.get(&row.0).copied().unwrap_or(0);
            record(row, Vec::new()).map(|plan| (plan, assigned_ms))
        })
        .collect()
}

/// One machine's duty under one enabled plan, as the missed-run sweep judges it.
#[derive(Debug, Clone)]
pub struct Duty {
    pub tenant_id: TenantId,
    pub plan_id: PlanId,
    pub plan_name: String,
    pub schedule: String,
    pub machine_id: MachineId,
    pub time_zone: String,
    /// Slots before this (the plan's last change, or the machine's assignment) do not count.
    pub since_ms: i64,
    /// The latest slot that has a run (of any status), if any.
    pub last_run_ms: Option<i64>,
}

/// Every enabled plan on every active machine of every active tenant, with its latest
/// run's slot (the runs' unique index answers that without reading the runs).
pub async fn duties(tx: &mut Tx) -> DbResult<Vec<Duty>> {
    type DutyRow = (
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
        Option<i64>,
    );
    let rows: Vec<DutyRow> = Query::service(
        "SELECT p.tenant_id, p.id, p.name, p.schedule, pm.machine_id, t.time_zone, p.updated_ms, \
         pm.assigned_ms, (SELECT MAX(r.scheduled_ms) FROM runs r WHERE r.tenant_id = p.tenant_id \
         AND r.plan_id = p.id AND r.machine_id = pm.machine_id) FROM plans p \
         JOIN plan_machines pm ON pm.plan_id = p.id AND pm.tenant_id = p.tenant_id \
         JOIN machines m ON m.id = pm.machine_id AND m.tenant_id = p.tenant_id \
         JOIN tenants t ON t.id = p.tenant_id \
         WHERE p.enabled AND m.revoked_ms IS NULL AND t.status = 'active'",
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                tenant_id,
                plan_id,
                plan_name,
                schedule,
                machine_id,
                time_zone,
                updated_ms,
                assigned_ms,
                last_run_ms,
            )| {
                Duty {
                    tenant_id: TenantId::from_db(tenant_id),
                    plan_id: PlanId::from_db(plan_id),
                    plan_name,
                    schedule,
                    machine_id: MachineId::from_db(machine_id),
                    time_zone,
                    since_ms: updated_ms.max(assigned_ms),
                    last_run_ms,
                }
            },
        )
        .collect())
}

/// One plan of the tenant.
pub async fn get(tx: &mut Tx, scope: &impl TenantKey, id: &PlanId) -> DbResult<Option<PlanRecord>> {
    let row: Option<Row> = Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM plans WHERE tenant_id = $1 AND id = $2"
        ),
    )
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut machines = assignments(&mut *tx, scope, Some(id)).await?;
    let assigned = machines.remove(&row.0).unwrap_or_default();
    record(row, assigned).map(Some)
}

/// Gives the plan exactly `machines`. A machine that keeps the plan keeps the time it was
/// given it: slots before that time were never its to run.
async fn assign(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &PlanId,
    machines: &[MachineId],
    now_ms: i64,
) -> DbResult<()> {
    let current = assignments(&mut *tx, scope, Some(id))
        .await?
        .remove(id.as_str())
        .unwrap_or_default();
    for gone in current.iter().filter(|m| !machines.contains(m)) {
        Query::tenant(
            scope,
            "DELETE FROM plan_machines WHERE tenant_id = $1 AND plan_id = $2 AND machine_id = $3",
        )
        .bind(id.as_str())
        .bind(gone.as_str())
        .execute(&mut *tx)
        .await?;
    }
    for machine in machines.iter().filter(|m| !current.contains(m)) {
        Query::tenant(
            scope,
            "INSERT INTO plan_machines (tenant_id, plan_id, machine_id, assigned_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(machine.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

fn name_taken(err: DbError, name: &str) -> DbError {
    match &err {
        DbError::Sqlx(sqlx_err)
            if sqlx_err
                .as_database_error()
                .is_some_and(|db_err| db_err.is_unique_violation()) =>
        {
            DbError::Conflict(format!(
                "name: a plan named {name:?} exists already; choose another name"
            ))
        }
        _ => err,
    }
}

/// Writes a plan's row: `$2` is its id, `$3`..`$12` the spec's fields in the order of
/// [`Row`], `$13` its drill, `$14` the time (of creation and of this change).
async fn write(
    tx: &mut Tx,
    scope: &impl TenantKey,
    sql: &'static str,
    id: &PlanId,
    spec: &PlanSpec,
    now_ms: i64,
) -> DbResult<u64> {
    let encode = |value: serde_json::Result<String>| value.map_err(|err| DbError::Corrupt(err.to_string()));
    Query::tenant(scope, sql)
        .bind(id.as_str())
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(encode(serde_json::to_string(&spec.sources))?)
        .bind(encode(serde_json::to_string(&spec.excludes))?)
        .bind(&spec.schedule)
        .bind(encode(serde_json::to_string(&spec.retention))?)
        .bind(
            spec.bandwidth_limit
                .map(|l| to_db_int(l.0, "bandwidth_limit"))
                .transpose()?,
        )
        .bind(spec.pre_hook.as_deref())
        .bind(spec.post_hook.as_deref())
        .bind(spec.enabled)
        .bind(spec.drill.map(DrillFrequency::as_str))
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|err| name_taken(err, &spec.name))
}

/// Stores a new plan with its machines.
pub async fn insert(tx: &mut Tx, scope: &impl TenantKey, spec: &PlanSpec, now_ms: i64) -> DbResult<PlanId> {
    let id = PlanId::generate();
    let sql = "INSERT INTO plans (tenant_id, id, name, kind, sources, excludes, schedule, retention, \
               bandwidth_limit, pre_hook, post_hook, enabled, drill, created_ms, updated_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)";
    write(tx, scope, sql, &id, spec, now_ms).await?;
    assign(tx, scope, &id, &spec.machines, now_ms).await?;
    Ok(id)
}

/// Replaces a plan's fields and machines; `false` when the tenant has no such plan.
pub async fn update(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &PlanId,
    spec: &PlanSpec,
    now_ms: i64,
) -> DbResult<bool> {
    let sql = "UPDATE plans SET name = $3, kind = $4, sources = $5, excludes = $6, schedule = $7, \
               retention = $8, bandwidth_limit = $9, pre_hook = $10, post_hook = $11, enabled = $12, \
               drill = $13, updated_ms = $14 WHERE tenant_id = $1 AND id = $2";
    let changed = write(tx, scope, sql, id, spec, now_ms).await? > 0;
    if changed {
        assign(tx, scope, id, &spec.machines, now_ms).await?;
    }
    Ok(changed)
}

/// Deletes a plan (its assignments go with it); `false` when the tenant has no such plan.
pub async fn delete(tx: &mut Tx, scope: &impl TenantKey, id: &PlanId) -> DbResult<bool> {
    Query::tenant(
        scope,
        "DELETE FROM plan_machines WHERE tenant_id = $1 AND plan_id = $2",
    )
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    let deleted = Query::tenant(scope, "DELETE FROM plans WHERE tenant_id = $1 AND id = $2")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(deleted > 0)
}
