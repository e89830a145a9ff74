//! Runs of protection plans. The agent daemon asks which of its plans are due, starts a
//! run for a slot (or records it `skipped`), reports progress and the outcome; users read
//! the history. The server judges what no agent can report: a slot that passed without a
//! run is `missed` once its grace is over, and a run whose agent stopped reporting is
//! `failed` ([`sweep`]). A slot has at most one run, so an agent back from downtime runs
//! a missed plan once, late, and not once per slot it slept through. A run that saved a
//! snapshot has its plan's retention applied ([`retention::after_run`]); a run that
//! failed, was missed or left files out raises an alert, and a later success resolves
//! it ([`alerts::after_run`]).

use std::time::Duration;

use super::plans::{next_run, previous_run};
use super::tenants::current;
use super::{alerts, drills, retention};
use crate::authz::{AgentPrincipal, Permission, UserPrincipal, service_scope};
use crate::db::{Tx, plans, runs};
use crate::ids::{MachineId, PlanId, RunId};
use crate::model::{PlanRecord, RunCounts, RunFilter, RunRecord, RunReport, RunStatus};
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// A running run whose agent has not reported for this long is failed: the agent was
/// killed, lost its machine or its network. Agents report at least once a minute.
pub const SILENT_AFTER: Duration = Duration::from_secs(10 * 60);

/// Most runs one listing answers.
pub const MAX_LISTED: u32 = 1000;

/// How long after its slot a run may start before the slot counts as missed: a tenth of
/// the schedule's interval, at least a minute and at most ten.
pub fn grace_ms(schedule: &str, zone: &str, slot_ms: i64) -> i64 {
    let interval = next_run(schedule, zone, slot_ms).map_or(0, |next| next - slot_ms);
    (interval / 10).clamp(60_000, 600_000)
}

/// A plan as its machine runs it: the slot waiting for a run, if any, and the next one.
#[derive(Debug, Clone)]
pub struct ScheduledPlan {
    pub plan: PlanRecord,
    /// The latest slot that has passed without a run on this machine (a missed one
    /// included: it is run late, once).
    pub due_ms: Option<i64>,
    /// The next slot after now.
    pub next_ms: Option<i64>,
    /// The snapshot to drill now, when a drill of the plan is due and the machine is
    /// quiet (at most one plan of a machine has one).
    pub drill: Option<String>,
}

/// The slot of an enabled plan that waits for a run: the latest one, if it came after
/// `since_ms` and has no run but a missed one.
async fn due_slot(
    tx: &mut Tx,
    scope: &crate::authz::TenantScope,
    plan: &PlanRecord,
    machine: &MachineId,
    zone: &str,
    since_ms: i64,
    now_ms: i64,
) -> ServiceResult<Option<i64>> {
    if !plan.spec.enabled {
        return Ok(None);
    }
    let Some(slot) = previous_run(&plan.spec.schedule, zone, now_ms).filter(|s| *s >= since_ms) else {
        return Ok(None);
    };
    let run = runs::at_slot(tx, scope, &plan.id, machine, slot).await?;
    Ok(run.is_none_or(|r| r.status == RunStatus::Missed).then_some(slot))
}

/// The plans a machine runs, each with its due and next slot (and a drill, if one is due
/// and the machine is quiet), and the tenant's time zone their schedules are in.
pub async fn for_agent(svc: &Service, agent: &AgentPrincipal) -> ServiceResult<(String, Vec<ScheduledPlan>)> {
    let zone = current(svc, &agent.scope).await?.time_zone;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let mut scheduled = Vec::new();
    for (plan, assigned_ms) in plans::of_machine(&mut tx, &agent.scope, &agent.machine_id).await? {
        let since = assigned_ms.max(plan.updated_ms);
        let due_ms = due_slot(&mut tx, &agent.scope, &plan, &agent.machine_id, &zone, since, now).await?;
        let next_ms = plan
            .spec
            .enabled
            .then(|| next_run(&plan.spec.schedule, &zone, now))
            .flatten();
        scheduled.push(ScheduledPlan {
            plan,
            due_ms,
            next_ms,
            drill: None,
        });
    }
    // Most machines have no drilling plan: their polls skip the quiet-time query.
    let drills_wanted = scheduled.iter().any(|s| s.plan.spec.drill.is_some());
    let quiet = drills_wanted
        && scheduled.iter().all(|s| {
            s.due_ms.is_none()
                && s.next_ms
                    .is_none_or(|next| next - now >= drills::quiet_gap_ms(&s.plan.spec.schedule, &zone, next))
        })
        && !drills::machine_busy(&mut tx, &agent.scope, &agent.machine_id).await?;
    if quiet {
        for s in &mut scheduled {
            s.drill = drills::due(&mut tx, &agent.scope, &s.plan, &agent.machine_id, now).await?;
            if s.drill.is_some() {
                break;
            }
        }
    }
    tx.commit().await?;
    Ok((zone, scheduled))
}

fn no_plan(id: &str) -> ServiceError {
    ServiceError::not_found(format!(
        "plan_id: no plan with id {id:?} is assigned to this machine"
    ))
}

/// The plan `plan_id` names among those assigned to the calling machine, read in `tx`.
pub(crate) async fn assigned_plan(
    tx: &mut Tx,
    agent: &AgentPrincipal,
    plan_id: &str,
) -> ServiceResult<PlanRecord> {
    let id = PlanId::parse(plan_id).ok_or_else(|| no_plan(plan_id))?;
    plans::of_machine(tx, &agent.scope, &agent.machine_id)
        .await?
        .into_iter()
        .map(|(plan, _)| plan)
        .find(|plan| plan.id == id)
        .ok_or_else(|| no_plan(plan_id))
}

fn no_run(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no run with id {id:?} of this machine"))
}

/// Starts a run of one of the machine's plans for `scheduled_ms`, or with `skipped`
/// records that the slot was skipped because the plan's previous run was still going.
/// A slot already marked missed is run late; any other run of the slot is a conflict.
pub async fn start(
    svc: &Service,
    agent: &AgentPrincipal,
    plan_id: &str,
    scheduled_ms: i64,
    skipped: bool,
) -> ServiceResult<RunRecord> {
    let zone = current(svc, &agent.scope).await?.time_zone;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let plan = assigned_plan(&mut tx, agent, plan_id).await?;
    if !plan.spec.enabled {
        return Err(ServiceError::conflict(format!(
            "plan {:?} is disabled; it runs again once a user enables it",
            plan.spec.name
        )));
    }
    if scheduled_ms > now || previous_run(&plan.spec.schedule, &zone, scheduled_ms) != Some(scheduled_ms) {
        return Err(ServiceError::invalid(format!(
            "scheduled: {} is not a past slot of plan {:?} ({:?} in {zone}); ask GET /api/v1/agent/plans for the slot that is due",
            crate::clock::rfc3339(scheduled_ms),
            plan.spec.name,
            plan.spec.schedule
        )));
    }
    if let Some(existing) =
        runs::at_slot(&mut tx, &agent.scope, &plan.id, &agent.machine_id, scheduled_ms).await?
    {
        if existing.status != RunStatus::Missed {
            return Err(ServiceError::conflict(format!(
                "this slot of plan {:?} has a run already ({}, {})",
                plan.spec.name, existing.id, existing.status
            )));
        }
        if skipped {
            return Ok(existing);
        }
        runs::start_late(&mut tx, &agent.scope, &existing.id, now).await?;
        tx.commit().await?;
        return Ok(RunRecord {
            status: RunStatus::Running,
            started_ms: Some(now),
            updated_ms: now,
            ..existing
        });
    }
    let run = RunRecord {
        id: RunId::generate(),
        plan_id: plan.id,
        plan_name: plan.spec.name,
        machine_id: agent.machine_id.clone(),
        status: if skipped {
            RunStatus::Skipped
        } else {
            RunStatus::Running
        },
        scheduled_ms,
        started_ms: (!skipped).then_some(now),
        finished_ms: skipped.then_some(now),
        updated_ms: now,
        counts: RunCounts::default(),
        snapshot_id: None,
        error: skipped.then(|| "the plan's previous run was still going".to_owned()),
    };
    runs::insert(&mut tx, &agent.scope, &run).await?;
    tx.commit().await?;
    Ok(run)
}

/// Stores the machine's report on its run: progress while `running`, or the outcome
/// (`succeeded`, `partial` or `failed`). Repeating the final report is answered with the
/// run as stored, so an agent that lost the answer may send it again.
pub async fn report(
    svc: &Service,
    agent: &AgentPrincipal,
    run_id: &str,
    report: RunReport,
) -> ServiceResult<RunRecord> {
    let id = RunId::parse(run_id).ok_or_else(|| no_run(run_id))?;
    if matches!(report.status, RunStatus::Missed | RunStatus::Skipped) {
        return Err(ServiceError::invalid(format!(
            "status: a report says running, succeeded, partial or failed, not {}",
            report.status
        )));
    }
    if report.status.saved_snapshot() && report.snapshot_id.is_none() {
        return Err(ServiceError::invalid(format!(
            "snapshot_id: a {} run names the snapshot it saved",
            report.status
        )));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let run = runs::get(&mut tx, &agent.scope, &id)
        .await?
        .filter(|run| run.machine_id == agent.machine_id)
        .ok_or_else(|| no_run(run_id))?;
    if run.status.is_final() {
        if run.status == report.status && run.snapshot_id == report.snapshot_id {
            return Ok(run);
        }
        return Err(ServiceError::conflict(format!(
            "run {run_id} has ended already ({}){}",
            run.status,
            run.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        )));
    }
    runs::report(&mut tx, &agent.scope, &id, &report, now).await?;
    let run = RunRecord {
        status: report.status,
        finished_ms: report.status.is_final().then_some(now),
        updated_ms: now,
        counts: report.counts,
        snapshot_id: report.snapshot_id,
        error: report.error,
        ..run
    };
    if run.status.is_final() {
        alerts::after_run(svc, &mut tx, &agent.scope, &run).await?;
    }
    tx.commit().await?;
    // The report stands either way: a retention that fails now is applied by the next
    // successful run, which judges every snapshot of the source again.
    if let Err(err) = retention::after_run(svc, &agent.scope, &run).await {
        tracing::warn!(run = %run.id, error = %err.message, "cannot apply the plan's retention now");
    }
    Ok(run)
}

/// The tenant's runs that match `filter`, newest slot first.
pub async fn list(
    svc: &Service,
    user: &UserPrincipal,
    mut filter: RunFilter,
) -> ServiceResult<Vec<RunRecord>> {
    user.require(Permission::ViewStatus)?;
    filter.limit = if filter.limit == 0 {
        MAX_LISTED
    } else {
        filter.limit.min(MAX_LISTED)
    };
    let mut tx = svc.db.begin().await?;
    let found = runs::list(&mut tx, &user.scope, &filter).await?;
    tx.commit().await?;
    Ok(found)
}

/// What one [`sweep`] judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Slots newly recorded as missed.
    pub missed: u32,
    /// Runs failed because their agent stopped reporting.
    pub silent: u32,
    /// Machines newly found silent.
    pub silent_machines: u32,
}

/// Records as missed the latest slot of every enabled plan on every active machine whose
/// grace is over without a run, fails the runs whose agent stopped reporting, and finds
/// the machines that went silent, raising their alerts. Cheap to repeat: the server calls
/// it every few seconds, and several servers may.
pub async fn sweep(svc: &Service) -> ServiceResult<SweepReport> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let failed = runs::fail_silent(
        &mut tx,
        now - duration_ms(SILENT_AFTER),
        now,
        "the agent stopped reporting on this run (it was stopped, or lost its machine or network); the next run resumes the upload",
    )
    .await?;
    for (tenant, id) in &failed {
        let scope = service_scope(tenant);
        if let Some(run) = runs::get(&mut tx, &scope, id).await? {
            alerts::after_run(svc, &mut tx, &scope, &run).await?;
        }
    }
    tx.commit().await?;
    // One read judges every duty; only the slots found missed are written. A duty whose
    // latest run is at or after the slot judged has nothing missing: the sweep runs every
    // few seconds, so each slot was judged while it was the latest.
    let mut tx = svc.db.begin().await?;
    let duties = plans::duties(&mut tx).await?;
    let mut missed = 0;
    for duty in duties {
        let Some(latest) = previous_run(&duty.schedule, &duty.time_zone, now) else {
            continue;
        };
        let slot = if latest + grace_ms(&duty.schedule, &duty.time_zone, latest) <= now {
            Some(latest)
        } else {
            previous_run(&duty.schedule, &duty.time_zone, latest - 1)
        };
        let Some(slot) =
            slot.filter(|s| *s >= duty.since_ms && duty.last_run_ms.is_none_or(|last| last < *s))
        else {
            continue;
        };
        let run = RunRecord {
            id: RunId::generate(),
            plan_id: duty.plan_id,
            plan_name: duty.plan_name,
            machine_id: duty.machine_id,
            status: RunStatus::Missed,
            scheduled_ms: slot,
            started_ms: None,
            finished_ms: None,
            updated_ms: now,
            counts: RunCounts::default(),
            snapshot_id: None,
            error: None,
        };
        let scope = service_scope(&duty.tenant_id);
        if runs::insert_missed(&mut tx, &scope, &run).await? {
            missed += 1;
            alerts::after_run(svc, &mut tx, &scope, &run).await?;
        }
    }
    tx.commit().await?;
    let silent_machines = alerts::sweep_machines(svc).await?;
    Ok(SweepReport {
        missed,
        silent: u32::try_from(failed.len()).unwrap_or(u32::MAX),
        silent_machines,
    })
}

#[cfg(test)]
mod tests {
    use super::grace_ms;

    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR_MS: i64 = 1_767_225_600_000;

    #[test]
    fn grace_is_a_tenth_of_the_interval_between_one_and_ten_minutes() {
        let zone = "Asia/Tokyo";
        assert_eq!(grace_ms("0 * * * *", zone, NEW_YEAR_MS), 6 * 60_000);
        assert_eq!(grace_ms("0 2 * * *", zone, NEW_YEAR_MS), 10 * 60_000);
        assert_eq!(grace_ms("*/5 * * * *", zone, NEW_YEAR_MS), 60_000);
        assert_eq!(grace_ms("* * * * *", zone, NEW_YEAR_MS), 60_000);
    }
}
