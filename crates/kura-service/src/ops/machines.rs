//! A tenant's machines as its own users manage them (portal and API): the list,
//! registration tokens for new machines, renaming and revoking. Operators do the same
//! for a contract through `ops::tenants`; the database calls are shared.

use super::record_in;
use super::tenants::{RegistrationToken, current, insert_registration_token};
use crate::audit::Action;
use crate::authz::{Permission, UserPrincipal};
use crate::db::machines;
use crate::ids::MachineId;
use crate::model::MachineRecord;
use crate::{Service, ServiceError, ServiceResult};

/// Longest machine name, as at registration.
pub const MAX_MACHINE_NAME: usize = 255;

/// The tenant's machines, oldest first, revoked ones included.
pub async fn list(svc: &Service, user: &UserPrincipal) -> ServiceResult<Vec<MachineRecord>> {
    user.require(Permission::ViewStatus)?;
    Ok(machines::list(&svc.db, &user.scope).await?)
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
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::MachineRevoke,
        machine.as_str(),
        "ok",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
