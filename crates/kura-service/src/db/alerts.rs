//! `alerts`, and who they are mailed to. A subject (kind, machine, plan, level) has at
//! most one open alert (a partial unique index), so two servers raising the same alert
//! at once conflict instead of mailing twice.

use super::{DbError, DbResult, Query, Target, Tx, from_db_int};
use crate::authz::TenantKey;
use crate::ids::{AlertId, MachineId, PlanId, TenantId};
use crate::model::{AlertFilter, AlertKind, AlertRecord, NewAlert};

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

macro_rules! columns {
    () => {
        "id, kind, machine_id, plan_id, plan_name, message, opened_ms, last_ms, occurrences, \
         resolved_ms, resolution"
    };
}

fn record(row: Row) -> DbResult<AlertRecord> {
    let (
        id,
        kind,
        machine_id,
        plan_id,
        plan_name,
        message,
        opened_ms,
        last_ms,
        occurrences,
        resolved_ms,
        resolution,
    ) = row;
    Ok(AlertRecord {
        id: AlertId::from_db(id),
        kind: kind.parse()?,
        machine_id: machine_id.map(MachineId::from_db),
        plan_id: plan_id.map(PlanId::from_db),
        plan_name,
        message,
        opened_ms,
        last_ms,
        occurrences: from_db_int(occurrences, "occurrences")?,
        resolved_ms,
        resolution,
    })
}

/// The open alert of a subject.
pub async fn open_about(tx: &mut Tx, scope: &impl TenantKey, subject: &str) -> DbResult<Option<AlertRecord>> {
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM alerts WHERE tenant_id = $1 AND subject = $2 AND resolved_ms IS NULL"
        ),
    )
    .bind(subject)
    .fetch_optional::<Row>(&mut *tx)
    .await?
    .map(record)
    .transpose()
}

/// Opens an alert; its subject having an open one already is a conflict.
pub async fn insert(
    tx: &mut Tx,
    scope: &impl TenantKey,
    alert: &NewAlert,
    now_ms: i64,
) -> DbResult<AlertRecord> {
    Query::tenant(
        scope,
        concat!(
            "INSERT INTO alerts (tenant_id, id, kind, subject, machine_id, plan_id, plan_name, message, \
             opened_ms, last_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING ",
            columns!()
        ),
    )
    .bind(AlertId::generate().as_str())
    .bind(alert.kind.as_str())
    .bind(alert.subject())
    .bind(alert.machine_id.as_ref().map(MachineId::as_str))
    .bind(alert.plan_id.as_ref().map(PlanId::as_str))
    .bind(alert.plan_name.as_deref())
    .bind(&alert.message)
    .bind(now_ms)
    .fetch_one::<Row>(&mut *tx)
    .await
    .map_err(|err| match &err {
        DbError::Sqlx(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            DbError::Conflict("this alert is open already".into())
        }
        _ => err,
    })
    .and_then(record)
}

/// Counts another occurrence of an open alert, with what happened this time.
pub async fn repeat(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &AlertId,
    message: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE alerts SET occurrences = occurrences + 1, last_ms = $3, message = $4 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.as_str())
    .bind(now_ms)
    .bind(message)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Resolves an open alert, saying what resolved it.
pub async fn resolve(
    tx: &mut Tx,
    scope: &impl TenantKey,
    id: &AlertId,
    resolution: &str,
    now_ms: i64,
) -> DbResult<()> {
    Query::tenant(
        scope,
        "UPDATE alerts SET resolved_ms = $3, resolution = $4 \
         WHERE tenant_id = $1 AND id = $2 AND resolved_ms IS NULL",
    )
    .bind(id.as_str())
    .bind(now_ms)
    .bind(resolution)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Resolves every open alert about a machine or a plan that is gone; answers how many.
pub async fn resolve_about(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine: Option<&MachineId>,
    plan: Option<&PlanId>,
    resolution: &str,
    now_ms: i64,
) -> DbResult<u64> {
    Query::tenant(
        scope,
        "UPDATE alerts SET resolved_ms = $4, resolution = $5 WHERE tenant_id = $1 \
         AND resolved_ms IS NULL AND (machine_id = $2 OR plan_id = $3)",
    )
    .bind(machine.map(MachineId::as_str))
    .bind(plan.map(PlanId::as_str))
    .bind(now_ms)
    .bind(resolution)
    .execute(&mut *tx)
    .await
}

/// The tenant's alerts that match `filter`: open ones first, then newest first.
pub async fn list<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    filter: &AlertFilter,
) -> DbResult<Vec<AlertRecord>> {
    // Absent filters are bound as NULL and match everything, so one statement serves all.
    Query::tenant(
        scope,
        concat!(
            "SELECT ",
            columns!(),
            " FROM alerts WHERE tenant_id = $1 \
             AND ($2 IS NULL OR (resolved_ms IS NULL) = $2) AND ($3 IS NULL OR kind = $3) \
             AND ($4 IS NULL OR machine_id = $4) AND ($5 IS NULL OR plan_id = $5) \
             ORDER BY resolved_ms IS NOT NULL, last_ms DESC, id LIMIT $6"
        ),
    )
    .bind(filter.open)
    .bind(filter.kind.map(AlertKind::as_str))
    .bind(filter.machine.as_ref().map(MachineId::as_str))
    .bind(filter.plan.as_ref().map(PlanId::as_str))
    .bind(i64::from(filter.limit))
    .fetch_all::<Row>(on)
    .await?
    .into_iter()
    .map(record)
    .collect()
}

/// A machine the service may expect to hear from: active, with an enabled plan.
#[derive(Debug, Clone)]
pub struct WatchedMachine {
    pub tenant_id: TenantId,
    pub machine_id: MachineId,
    pub name: String,
    /// When it was last heard from (or registered, if never).
    pub last_heard_ms: i64,
    /// Its open `machine-silent` alert, if any.
    pub silent_alert: Option<AlertId>,
}

/// Every active machine of an active tenant with an enabled plan, with its open `machine-silent` alert.
pub async fn watched_machines(tx: &mut Tx) -> DbResult<Vec<WatchedMachine>> {
    let rows: Vec<(String, String, String, i64, Option<String>)> = Query::service(
        "SELECT m.tenant_id, m.id, m.name, COALESCE(m.last_seen_ms, m.created_ms), \
         (SELECT a.id FROM alerts a WHERE a.tenant_id = m.tenant_id AND a.machine_id = m.id \
          AND a.kind = $1 AND a.resolved_ms IS NULL) \
         FROM machines m JOIN tenants t ON t.id = m.tenant_id \
         WHERE m.revoked_ms IS NULL AND t.status = 'active' AND EXISTS (SELECT 1 FROM plan_machines pm \
         JOIN plans p ON p.id = pm.plan_id WHERE pm.machine_id = m.id AND p.enabled)",
    )
    .bind(AlertKind::MachineSilent.as_str())
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, machine, name, last_heard_ms, alert)| WatchedMachine {
            tenant_id: TenantId::from_db(tenant),
            machine_id: MachineId::from_db(machine),
            name,
            last_heard_ms,
            silent_alert: alert.map(AlertId::from_db),
        })
        .collect())
}

/// Deletes alerts resolved before `before_ms`.
pub async fn prune(tx: &mut Tx, before_ms: i64) -> DbResult<u64> {
    Query::service("DELETE FROM alerts WHERE resolved_ms < $1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
}
