//! Restore drills: proof, on a schedule, that a plan's backups restore. A plan with
//! `drill` set (weekly or monthly) has each of its machines, at a quiet time, restore
//! the plan's latest snapshot into a scratch directory (an image snapshot is read through
//! the restore path without writing), check every byte against the snapshot, delete the
//! scratch copy and report files, bytes, duration and mismatches.
//!
//! The server decides when: a drill is offered with the machine's plans ([`due`]) when
//! the period has passed since the last one that passed (a day after one that failed, an
//! hour after one that was abandoned), and the machine is quiet — no backup, restore job
//! or other drill under way, and no backup slot due soon ([`quiet_gap_ms`]). A failed
//! drill raises `drill-failed`; the next one that passes resolves it. While a drill
//! reads a snapshot, retention keeps it.

use std::time::Duration;

use super::plans::next_run;
use crate::authz::{AgentPrincipal, Permission, TenantKey, UserPrincipal};
use crate::db::{Tx, drills, restores};
use crate::ids::{DrillId, MachineId};
use crate::model::{DrillCounts, DrillFilter, DrillRecord, DrillReport, DrillStatus, PlanRecord};
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// A running drill whose machine has not reported for this long is abandoned. The
/// daemon reports at least every 20 s.
pub const SILENT_AFTER: Duration = Duration::from_secs(10 * 60);

/// After a drill that failed, the next is due this much later (the cause may be
/// passing: a full scratch disk); after one that was abandoned, this.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(24 * 3600);
pub const RETRY_ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// A machine is quiet when its next backup slot is at least this far off (or half the
/// plan's interval, for plans that run more often than hourly).
pub const QUIET_BEFORE_SLOT: Duration = Duration::from_secs(30 * 60);

/// Most drills one listing answers.
pub const MAX_LISTED: u32 = 500;

/// How far off the next slot at `next_ms` of a schedule must be for a drill to start:
/// [`QUIET_BEFORE_SLOT`], or half the interval between slots if that is shorter.
pub fn quiet_gap_ms(schedule: &str, zone: &str, next_ms: i64) -> i64 {
    let interval = next_run(schedule, zone, next_ms).map_or(i64::MAX, |after| after - next_ms);
    duration_ms(QUIET_BEFORE_SLOT).min(interval / 2)
}

/// The snapshot the plan's drill on `machine` should restore now, if a drill is due: the
/// plan is enabled and drills, the last drill is long enough ago, and a run of the plan
/// saved a snapshot that is still there. Quiet time is the caller's to judge.
pub(crate) async fn due(
    tx: &mut Tx,
    scope: &impl TenantKey,
    plan: &PlanRecord,
    machine: &MachineId,
    now_ms: i64,
) -> ServiceResult<Option<String>> {
    let Some(frequency) = plan.spec.drill.filter(|_| plan.spec.enabled) else {
        return Ok(None);
    };
    if let Some(last) = drills::last_of(tx, scope, &plan.id, machine).await? {
        let wait = match last.status {
            DrillStatus::Running => return Ok(None),
            DrillStatus::Passed => frequency.period(),
            DrillStatus::Failed => RETRY_FAILED_AFTER,
            DrillStatus::Abandoned => RETRY_ABANDONED_AFTER,
        };
        if now_ms < last.finished_ms.unwrap_or(last.updated_ms) + duration_ms(wait) {
            return Ok(None);
        }
    }
    Ok(drills::latest_snapshot(tx, scope, &plan.id, machine).await?)
}

/// Whether the machine is busy with something the service asked of it.
pub(crate) async fn machine_busy(
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine: &MachineId,
) -> ServiceResult<bool> {
    Ok(drills::machine_busy(tx, scope, machine).await?)
}

fn no_drill(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no drill with id {id:?}"))
}

/// Starts a drill of one of the machine's plans on a committed snapshot of its own.
pub async fn start(
    svc: &Service,
    agent: &AgentPrincipal,
    plan_id: &str,
    snapshot_id: &str,
) -> ServiceResult<DrillRecord> {
    let snapshot = snapshot_id.to_ascii_lowercase();
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let plan = super::runs::assigned_plan(&mut tx, agent, plan_id).await?;
    if plan.spec.drill.is_none() || !plan.spec.enabled {
        return Err(ServiceError::conflict(format!(
            "plan {:?} has no drills now (they are off, or the plan is disabled)",
            plan.spec.name
        )));
    }
    let owner = restores::committed_snapshot(&mut tx, &agent.scope, &snapshot).await?;
    if owner.is_none_or(|(machine, _)| machine != agent.machine_id) {
        return Err(ServiceError::not_found(format!(
            "snapshot_id: no snapshot {snapshot_id:?} of this machine is kept; ask GET /api/v1/agent/plans for the one to drill"
        )));
    }
    let drill = DrillRecord {
        id: DrillId::generate(),
        plan_id: plan.id,
        plan_name: plan.spec.name,
        machine_id: agent.machine_id.clone(),
        snapshot_id: snapshot,
        status: DrillStatus::Running,
        started_ms: now,
        finished_ms: None,
        updated_ms: now,
        counts: DrillCounts::default(),
        error: None,
    };
    drills::insert(&mut tx, &agent.scope, &drill).await?;
    tx.commit().await?;
    Ok(drill)
}

/// The machine's report on its drill: counts while `running`, then `passed`, `failed`
/// or `abandoned`. Repeating the final report answers the drill as stored.
pub async fn report(
    svc: &Service,
    agent: &AgentPrincipal,
    id: &str,
    report: DrillReport,
) -> ServiceResult<DrillRecord> {
    let drill_id = DrillId::parse(id).ok_or_else(|| no_drill(id))?;
    if report.status == DrillStatus::Passed && (report.counts.mismatches > 0 || report.error.is_some()) {
        return Err(ServiceError::invalid(
            "status: a drill with mismatches or an error has failed, not passed",
        ));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let drill = drills::get(&mut tx, &agent.scope, &drill_id)
        .await?
        .filter(|drill| drill.machine_id == agent.machine_id)
        .ok_or_else(|| no_drill(id))?;
    if drill.status.is_final() {
        if drill.status == report.status {
            return Ok(drill);
        }
        return Err(ServiceError::conflict(format!(
            "drill {id} has ended already ({})",
            drill.status
        )));
    }
    drills::report(&mut tx, &agent.scope, &drill_id, &report, now).await?;
    let drill = DrillRecord {
        status: report.status,
        finished_ms: report.status.is_final().then_some(now),
        updated_ms: now,
        counts: report.counts,
        error: report.error,
        ..drill
    };
    super::alerts::after_drill(svc, &mut tx, &agent.scope, &drill).await?;
    tx.commit().await?;
    Ok(drill)
}

/// The tenant's drills that match `filter`, the latest first.
pub async fn list(
    svc: &Service,
    user: &UserPrincipal,
    mut filter: DrillFilter,
) -> ServiceResult<Vec<DrillRecord>> {
    user.require(Permission::ViewStatus)?;
    filter.limit = if filter.limit == 0 {
        MAX_LISTED
    } else {
        filter.limit.min(MAX_LISTED)
    };
    Ok(drills::list(&svc.db, &user.scope, &filter).await?)
}

/// Abandons running drills whose machine stopped reporting; answers how many.
pub async fn sweep(svc: &Service) -> ServiceResult<u64> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let abandoned = drills::abandon_silent(
        &mut tx,
        now - duration_ms(SILENT_AFTER),
        now,
        "the machine stopped reporting on this drill (its daemon was stopped, or it lost its network); it is tried again within the hour",
    )
    .await?;
    tx.commit().await?;
    Ok(abandoned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_waits_for_a_gap_before_the_next_slot() {
        let zone = "Asia/Tokyo";
        let slot = next_run("0 2 * * *", zone, 0).unwrap();
        assert_eq!(quiet_gap_ms("0 2 * * *", zone, slot), 30 * 60_000);
        let slot = next_run("* * * * *", zone, 0).unwrap();
        assert_eq!(quiet_gap_ms("* * * * *", zone, slot), 30_000);
        let slot = next_run("*/10 * * * *", zone, 0).unwrap();
        assert_eq!(quiet_gap_ms("*/10 * * * *", zone, slot), 5 * 60_000);
    }
}
