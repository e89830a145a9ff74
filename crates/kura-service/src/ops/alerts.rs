//! Alerts: the service notices what needs a person — a backup that failed, did not run
//! or left files out, storage passing 80, 90 and 100 % of the quota, damage that verify
//! could not heal, a restore drill that failed, a machine with a plan that has gone
//! quiet — and tells the tenant's admins and operators by mail (through the outbox, in
//! each one's language) and on the portal.
//!
//! A subject (kind, machine, plan; for the quota, the level) has at most one open alert:
//! while it is open, a repeat is counted on it and not mailed again. What ends the cause
//! resolves it and says so by mail: a later successful run, storage back under the
//! level, a clean verify, the machine heard from again. Alerts are raised and resolved
//! inside the transaction of the change that causes them, with their event and mail.

use std::time::Duration;

use super::record_in;
use crate::audit::{Action, Actor};
use crate::authz::{Permission, TenantKey, TenantScope, UserPrincipal, service_scope};
use crate::db::{Tx, alerts, machines, outbox, tenants, users};
use crate::ids::{MachineId, PlanId};
use crate::jobs::SCHEDULE_ACTOR;
use crate::mail::MailContent;
use crate::model::{
    AlertFilter, AlertKind, AlertRecord, DrillRecord, DrillStatus, MailAudience, NewAlert, NewMail,
    RunRecord, RunStatus, TenantRecord,
};
use crate::ops::vault::human_bytes;
use crate::{Service, ServiceError, ServiceResult, duration_ms, minute_in_zone};

/// Most alerts one listing answers.
pub const MAX_LISTED: u32 = 1000;

/// A machine with an enabled plan that has not been heard from for this long is
/// silent. Its agent daemon asks for its plans at least every 30 s.
pub const MACHINE_SILENT_AFTER: Duration = Duration::from_secs(30 * 60);

/// The quota levels (percent of the quota stored) that raise an alert once per crossing.
pub const QUOTA_LEVELS: [u32; 3] = [80, 90, 100];

/// An alert mail that could not be sent within this long is given up.
const MAIL_GIVE_UP: Duration = Duration::from_secs(3 * 24 * 3600);

fn service_actor(request_id: &str) -> Actor {
    Actor {
        name: SCHEDULE_ACTOR.to_owned(),
        source: None,
        request_id: request_id.to_owned(),
    }
}

/// Mails an alert (or, with `resolution`, its end) to the tenant's recipients; answers
/// how many were mailed. Nothing is queued when the service cannot send mail.
async fn mail(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    alert: &AlertRecord,
    resolution: Option<&str>,
    now: i64,
) -> ServiceResult<usize> {
    if !svc.settings.mail_enabled {
        return Ok(0);
    }
    let recipients = users::mail_recipients(tx, scope, MailAudience::Alerts).await?;
    if recipients.is_empty() {
        return Ok(0);
    }
    let tenant = current_tenant(tx, scope).await?;
    let machine = match &alert.machine_id {
        Some(id) => machines::name(tx, scope, id)
            .await?
            .unwrap_or_else(|| id.to_string()),
        None => String::new(),
    };
    let plan = alert.plan_name.clone().unwrap_or_default();
    let link = format!("{}/alerts", svc.public_url);
    let content = match resolution {
        None => MailContent::Alert {
            alert_kind: alert.kind.to_string(),
            tenant: tenant.name,
            machine,
            plan,
            message: alert.message.clone(),
            time_ms: alert.opened_ms,
            time_zone: tenant.time_zone,
            link,
        },
        Some(resolution) => MailContent::AlertResolved {
            alert_kind: alert.kind.to_string(),
            tenant: tenant.name,
            machine,
            plan,
            resolution: resolution.to_owned(),
            time_ms: now,
            time_zone: tenant.time_zone,
            link,
        },
    };
    for recipient in &recipients {
        let mail = NewMail {
            recipient: recipient.email.clone(),
            language: recipient.language,
            content: content.clone(),
            give_up_ms: now + duration_ms(MAIL_GIVE_UP),
        };
        outbox::queue(&mut *tx, scope, &mail, now).await?;
    }
    Ok(recipients.len())
}

/// The tenant, read in `tx`.
async fn current_tenant(tx: &mut Tx, scope: &impl TenantKey) -> ServiceResult<TenantRecord> {
    tenants::get(&mut *tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))
}

/// What an event names an alert by: its kind, machine and plan.
fn target(alert: &AlertRecord) -> String {
    let mut target = alert.kind.to_string();
    if let Some(machine) = &alert.machine_id {
        target.push_str(&format!(" machine {machine}"));
    }
    if let Some(plan) = &alert.plan_name {
        target.push_str(&format!(" plan {plan:?}"));
    }
    target
}

/// Raises an alert in `tx`, mailing it if `notify`; a subject with an open alert counts
/// the repeat on it instead. Answers the new alert, if one was opened.
pub(crate) async fn raise(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    alert: NewAlert,
    notify: bool,
) -> ServiceResult<Option<AlertRecord>> {
    let now = svc.now_ms();
    if let Some(open) = alerts::open_about(tx, scope, &alert.subject()).await? {
        alerts::repeat(tx, scope, &open.id, &alert.message, now).await?;
        return Ok(None);
    }
    let record = alerts::insert(tx, scope, &alert, now).await?;
    let mailed = if notify {
        mail(svc, tx, scope, &record, None, now).await?
    } else {
        0
    };
    let result = format!("{}; mailed to {mailed}", record.message);
    let actor = service_actor(record.id.as_str());
    record_in(
        tx,
        &actor,
        now,
        scope,
        Action::AlertRaise,
        &target(&record),
        &result,
    )
    .await?;
    svc.wake_runner();
    Ok(Some(record))
}

/// Resolves the open alert of `subject`, if any, saying what resolved it (and mailing
/// that if `notify`). Answers whether there was one.
pub(crate) async fn resolve(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    subject: &str,
    resolution: &str,
    notify: bool,
) -> ServiceResult<bool> {
    let Some(open) = alerts::open_about(tx, scope, subject).await? else {
        return Ok(false);
    };
    let now = svc.now_ms();
    alerts::resolve(tx, scope, &open.id, resolution, now).await?;
    let mailed = if notify {
        mail(svc, tx, scope, &open, Some(resolution), now).await?
    } else {
        0
    };
    let result = format!("{resolution}; mailed to {mailed}");
    let actor = service_actor(open.id.as_str());
    record_in(
        tx,
        &actor,
        now,
        scope,
        Action::AlertResolve,
        &target(&open),
        &result,
    )
    .await?;
    svc.wake_runner();
    Ok(true)
}

/// Resolves, without mail, every open alert about a machine that was revoked or a plan
/// that was deleted.
pub(crate) async fn resolve_gone(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    machine: Option<&MachineId>,
    plan: Option<&PlanId>,
    resolution: &str,
) -> ServiceResult<u64> {
    Ok(alerts::resolve_about(tx, scope, machine, plan, resolution, svc.now_ms()).await?)
}

/// An alert about a run's plan on its machine.
fn about_run(run: &RunRecord, kind: AlertKind, message: String) -> NewAlert {
    NewAlert {
        kind,
        machine_id: Some(run.machine_id.clone()),
        plan_id: Some(run.plan_id.clone()),
        plan_name: Some(run.plan_name.clone()),
        level: None,
        message,
    }
}

/// Raises or resolves the alerts a run's outcome calls for, in the transaction that
/// stores it: `failed`, `missed` and `partial` raise theirs; a run that saved a snapshot
/// resolves the failed and missed ones, and a fully successful one the partial one too.
pub(crate) async fn after_run(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    run: &RunRecord,
) -> ServiceResult<()> {
    if matches!(run.status, RunStatus::Running | RunStatus::Skipped) {
        return Ok(());
    }
    let time_zone = &current_tenant(tx, scope).await?.time_zone;
    let slot = minute_in_zone(run.scheduled_ms, time_zone);
    let subject = |kind| about_run(run, kind, String::new()).subject();
    match run.status {
        RunStatus::Failed => {
            let error = run.error.as_deref().unwrap_or("the agent gave no reason");
            let message = format!("the run due at {slot} ({time_zone}) failed: {error}");
            raise(
                svc,
                tx,
                scope,
                about_run(run, AlertKind::BackupFailed, message),
                true,
            )
            .await?;
        }
        RunStatus::Missed => {
            let message = format!(
                "the run due at {slot} ({time_zone}) did not start: is the machine on, and its agent daemon (kura agent run) running?"
            );
            raise(
                svc,
                tx,
                scope,
                about_run(run, AlertKind::BackupMissed, message),
                true,
            )
            .await?;
        }
        RunStatus::Succeeded | RunStatus::Partial => {
            let resolution = format!("the run due at {slot} ({time_zone}) saved a snapshot");
            let mut kinds = vec![AlertKind::BackupFailed, AlertKind::BackupMissed];
            if run.status == RunStatus::Succeeded {
                kinds.push(AlertKind::BackupPartial);
            } else {
                let error = run.error.as_deref().unwrap_or("some files could not be read");
                let message = format!(
                    "the run due at {slot} ({time_zone}) saved a snapshot without the files it could not read: {error}"
                );
                raise(
                    svc,
                    tx,
                    scope,
                    about_run(run, AlertKind::BackupPartial, message),
                    true,
                )
                .await?;
            }
            for kind in kinds {
                resolve(svc, tx, scope, &subject(kind), &resolution, true).await?;
            }
        }
        RunStatus::Running | RunStatus::Skipped => {}
    }
    Ok(())
}

/// Raises `drill-failed` for a drill that failed, resolves it for one that passed; an
/// abandoned drill says nothing about the backup.
pub(crate) async fn after_drill(
    svc: &Service,
    tx: &mut Tx,
    scope: &impl TenantKey,
    drill: &DrillRecord,
) -> ServiceResult<()> {
    let time_zone = &current_tenant(tx, scope).await?.time_zone;
    let started = minute_in_zone(drill.started_ms, time_zone);
    let alert = |message| NewAlert {
        kind: AlertKind::DrillFailed,
        machine_id: Some(drill.machine_id.clone()),
        plan_id: Some(drill.plan_id.clone()),
        plan_name: Some(drill.plan_name.clone()),
        level: None,
        message,
    };
    let snapshot = &drill.snapshot_id[..drill.snapshot_id.len().min(12)];
    match drill.status {
        DrillStatus::Failed => {
            let why = drill.error.as_deref().unwrap_or("the agent gave no reason");
            let message = format!(
                "the restore drill of snapshot {snapshot} started at {started} ({time_zone}) failed, {} of {} files not as backed up: {why}",
                drill.counts.mismatches, drill.counts.files
            );
            raise(svc, tx, scope, alert(message), true).await?;
        }
        DrillStatus::Passed => {
            let resolution = format!(
                "the restore drill of snapshot {snapshot} started at {started} ({time_zone}) restored and checked {} files",
                drill.counts.files
            );
            resolve(svc, tx, scope, &alert(String::new()).subject(), &resolution, true).await?;
        }
        DrillStatus::Running | DrillStatus::Abandoned => {}
    }
    Ok(())
}

/// An alert about the tenant, or one of its machines, that names no plan.
fn new_alert(kind: AlertKind, machine_id: Option<MachineId>, message: String) -> NewAlert {
    NewAlert {
        kind,
        machine_id,
        plan_id: None,
        plan_name: None,
        level: None,
        message,
    }
}

/// A quota alert of a level.
fn quota_alert(level: u32, message: String) -> NewAlert {
    let kind = if level >= 100 {
        AlertKind::QuotaExceeded
    } else {
        AlertKind::QuotaWarning
    };
    NewAlert {
        level: Some(level),
        ..new_alert(kind, None, message)
    }
}

/// Raises the quota alerts of the levels the tenant's storage has reached and resolves
/// those it is back under. Once per crossing: an open level is not raised again, and
/// when several are crossed at once only the highest is mailed; falling back under 80 %
/// is mailed once.
pub async fn check_quota(svc: &Service, scope: &TenantScope) -> ServiceResult<()> {
    let tenant = super::tenants::current(svc, scope).await?;
    let stored = super::vault::find(svc, scope)
        .await?
        .map_or(0, |tv| tv.stored_bytes());
    let percent = u128::from(stored) * 100 / u128::from(tenant.quota_bytes.max(1));
    let reached = QUOTA_LEVELS
        .iter()
        .copied()
        .filter(|l| u128::from(*l) <= percent)
        .max();
    let usage = format!(
        "the tenant stores {} of its {} quota ({percent} %)",
        human_bytes(stored),
        human_bytes(tenant.quota_bytes)
    );
    let mut tx = svc.db.begin().await?;
    for level in QUOTA_LEVELS {
        let alert = quota_alert(level, usage.clone());
        if reached.is_some_and(|r| level <= r) {
            let advice = if level >= 100 {
                "backups that need more space are refused: forget old snapshots or ask your provider for a larger quota"
            } else {
                "forget old snapshots or ask your provider for a larger quota before backups are refused"
            };
            let alert = NewAlert {
                message: format!("{usage}, {level} % or more; {advice}"),
                ..alert
            };
            raise(svc, &mut tx, scope, alert, Some(level) == reached).await?;
        } else {
            let resolution = format!("{usage}, under {level} % again");
            resolve(
                svc,
                &mut tx,
                scope,
                &alert.subject(),
                &resolution,
                level == QUOTA_LEVELS[0],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Raises `verify-failed` when a verify round left damage it could not heal, and
/// resolves it after a round that found none (or healed all it found).
pub async fn after_verify(svc: &Service, scope: &TenantScope, damage: Option<String>) -> ServiceResult<()> {
    let alert = new_alert(AlertKind::VerifyFailed, None, damage.clone().unwrap_or_default());
    let mut tx = svc.db.begin().await?;
    if damage.is_some() {
        raise(svc, &mut tx, scope, alert, true).await?;
    } else {
        let resolution = "a later verify found no damage left";
        resolve(svc, &mut tx, scope, &alert.subject(), resolution, true).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Raises `machine-silent` for every machine with an enabled plan that has not been
/// heard from for [`MACHINE_SILENT_AFTER`], and resolves it for those heard from again.
/// Answers how many were raised.
pub(crate) async fn sweep_machines(svc: &Service) -> ServiceResult<u32> {
    let now = svc.now_ms();
    let silent_since = now - duration_ms(MACHINE_SILENT_AFTER);
    let mut tx = svc.db.begin().await?;
    let mut raised = 0;
    for machine in alerts::watched_machines(&mut tx).await? {
        let scope = service_scope(&machine.tenant_id);
        let silent = machine.last_heard_ms < silent_since;
        if silent && machine.silent_alert.is_none() {
            let minutes = (now - machine.last_heard_ms) / 60_000;
            let message = format!(
                "machine {:?} has a backup plan but has not contacted the service for {minutes} minutes: is it on, online, and its agent daemon (kura agent run) running?",
                machine.name
            );
            let alert = new_alert(AlertKind::MachineSilent, Some(machine.machine_id), message);
            raised += u32::from(raise(svc, &mut tx, &scope, alert, true).await?.is_some());
        } else if !silent && machine.silent_alert.is_some() {
            let alert = new_alert(AlertKind::MachineSilent, Some(machine.machine_id), String::new());
            let resolution = format!("machine {:?} contacted the service again", machine.name);
            resolve(svc, &mut tx, &scope, &alert.subject(), &resolution, true).await?;
        }
    }
    tx.commit().await?;
    Ok(raised)
}

/// The tenant's alerts that match `filter`: open ones first, then the latest first.
pub async fn list(
    svc: &Service,
    user: &UserPrincipal,
    mut filter: AlertFilter,
) -> ServiceResult<Vec<AlertRecord>> {
    user.require(Permission::ViewStatus)?;
    filter.limit = if filter.limit == 0 {
        MAX_LISTED
    } else {
        filter.limit.min(MAX_LISTED)
    };
    Ok(alerts::list(&svc.db, &user.scope, &filter).await?)
}
