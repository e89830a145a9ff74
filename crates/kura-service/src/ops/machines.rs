//! A tenant's machines as its own users manage them (portal and API): the list,
//! registration tokens for new machines, renaming and revoking. Operators do the same
//! for a contract through `ops::tenants`; the database calls are shared.

use std::collections::HashMap;

use super::record_in;
use super::tenants::{RegistrationToken, current, insert_registration_token};
use crate::audit::Action;
use crate::authz::{Permission, UserPrincipal};
use crate::db::{machines, runs, snapshots};
use crate::ids::MachineId;
use crate::model::{LatestBackup, MachineActivity, MachineRecord, RunRecord};
use crate::{Service, ServiceError, ServiceResult};

/// Longest machine name, as at registration.
pub const MAX_MACHINE_NAME: usize = 255;

/// The tenant's machines, oldest first, revoked ones included.
pub async fn list(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<MachineRecord>> {
    user.require(Permission::ViewStatus)?;
    Ok(machines::list(&svc.db, &user.scope).await?)
}

/// A machine with what it has backed up: its committed snapshots summed, and the newest
/// backup of each of its sources (by source name).
#[derive(Debug, Clone)]
pub struct MachineOverview {
    pub machine: MachineRecord,
    pub activity: MachineActivity,
    pub latest: Vec<LatestBackup>,
    /// The latest run of each plan the machine has run (or missed), by plan name.
    pub plan_runs: Vec<RunRecord>,
}

impl MachineOverview {
    /// Whether the machine is active and has had no backup for `window_ms` before `now_ms`
    /// (counted from its registration when it never had one).
    pub fn overdue(&self, now_ms: i64, window_ms: i64) -> bool {
        let since_ms = self
            .activity
            .last_backup_ns
            .map_or(self.machine.created_ms, |ns| ns.div_euclid(1_000_000));
        self.machine.revoked_ms.is_none() && now_ms.saturating_sub(since_ms) >= window_ms
    }
}

/// The tenant's machines, oldest first, each with its backups summed ([`MachineOverview`]):
/// three reads of the service database, none of the vault.
pub async fn overview(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<MachineOverview>> {
    user.require(Permission::ViewStatus)?;
    let list = machines::list(&svc.db, &user.scope).await?;
    let mut activity = snapshots::activity(&svc.db, &user.scope).await?;
    let mut latest: HashMap<MachineId, Vec<LatestBackup>> = HashMap::new();
    for backup in snapshots::latest(&svc.db, &user.scope).await? {
        latest.entry(backup.machine_id.clone()).or_default().push(backup);
    }
    let mut plan_runs: HashMap<MachineId, Vec<RunRecord>> = HashMap::new();
    for run in runs::latest(&svc.db, &user.scope).await? {
        plan_runs.entry(run.machine_id.clone()).or_default().push(run);
    }
    Ok(list
        .into_iter()
        .map(|machine| MachineOverview {
            activity: activity.remove(&machine.id).unwrap_or_default(),
            latest: latest.remove(&machine.id).unwrap_or_default(),
            plan_runs: plan_runs.remove(&machine.id).unwrap_or_default(),
            machine,
        })
        .collect())
}

/// A one-time registration token for a new machine of an active tenant, recorded in the
/// event log (never the token itself).
pub async fn issue_registration_token(
    svc: &Service,
    user: &UserPrincipal,
) -> ServiceResult<RegistrationToken> {
    user.require(Permission::OperateBackups)?;
    let tenant = current(svc, &user.scope).await?;
    crate::authz::refuse_inactive_tenant(tenant.status)?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let token = insert_registration_token(svc, &mut tx, &user.scope, now).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::RegistrationTokenIssue,
        "registration token",
        &format!("ok: expires {}", crate::rfc3339(token.expires_ms)),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

fn no_machine(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no machine with id {id:?} in this tenant"))
}

/// Gives a machine a new name (its agent keeps working; the name is what people see).
pub async fn rename(
    svc: &Service,
    user: &UserPrincipal,
    id: &str,
    name: &str,
) -> ServiceResult<MachineRecord> {
    user.require(Permission::OperateBackups)?;
    let name = name.trim();
    super::validate_label("machine name", name, MAX_MACHINE_NAME)?;
    let machine = MachineId::parse(id).ok_or_else(|| no_machine(id))?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let Some(old) = machines::rename(&mut tx, &user.scope, &machine, name).await? else {
        return Err(no_machine(id));
    };
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::MachineRename,
        machine.as_str(),
        &format!("ok: {old:?} -> {name:?}"),
    )
    .await?;
    tx.commit().await?;
    machines::list(&svc.db, &user.scope)
        .await?
        .into_iter()
        .find(|m| m.id == machine)
        .ok_or_else(|| no_machine(id))
}

/// Revokes a machine's credential at once (a host retired or compromised); its
/// snapshots stay.
pub async fn revoke(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<()> {
    user.require(Permission::OperateBackups)?;
    let machine = MachineId::parse(id).ok_or_else(|| no_machine(id))?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    if !machines::revoke(&mut tx, &user.scope, &machine, now).await? {
        return Err(ServiceError::not_found(format!(
            "no active machine with id {id:?} in this tenant (it may be revoked already)"
        )));
    }
    let key_slot = machines::key_slot(&mut tx, &user.scope, &machine).await?;
    machines::set_key_slot(&mut tx, &user.scope, &machine, None).await?;
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::MachineRevoke,
        machine.as_str(),
        &key_slot.as_deref().map_or_else(
            || "ok".to_owned(),
            |slot| format!("ok: its key slot {slot} removed"),
        ),
    )
    .await?;
    super::alerts::resolve_gone(
        svc,
        &mut tx,
        &user.scope,
        Some(&machine),
        None,
        "the machine was revoked",
    )
    .await?;
    tx.commit().await?;
    // The machine's own key slot goes with it: its config file no longer opens the vault.
    if let Some(slot) = key_slot
        && let Some(vault) = super::vault::find(svc, &user.scope).await?
    {
        super::vault::remove_slot(&vault, &slot).await;
    }
    Ok(())
}
