//! `rebuild-catalog`: makes a tenant's vault catalog anew from its objects in storage
//! (after it was lost, or when the service database was restored from a copy older than
//! the latest backups), gives snapshots the service has no machine for back to their
//! machine, then brings the portal's per-machine facts in line with it.

use std::collections::HashSet;

use super::Progress;
use crate::audit::{Action, Actor};
use crate::authz::TenantScope;
use crate::db::{machines, snapshots};
use crate::model::SnapshotFacts;
use crate::ops::terminations::record_both;
use crate::ops::vault::{find, store_error};
use crate::{Service, ServiceError, ServiceResult};

pub(super) async fn run(
    svc: &Service,
    actor: &Actor,
    scope: &TenantScope,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    progress.set("reading the vault's objects back into its catalog");
    let Some(report) = svc.vaults.rebuild_catalog(scope).await.map_err(store_error)? else {
        return Err(ServiceError::not_found(
            "storage holds no vault of this tenant (no vault configuration object): there is nothing to rebuild from",
        ));
    };
    let mut summary = format!(
        "ok: {} snapshots ({} found again, {} dropped as gone from storage), {} packs indexed, {} missing from storage",
        report.snapshots,
        report.snapshots_restored,
        report.snapshots_dropped,
        report.packs_indexed,
        report.packs_missing
    );
    if !report.snapshots_incomplete.is_empty() {
        summary.push_str(&format!(
            "; {} snapshots reference chunks storage no longer holds",
            report.snapshots_incomplete.len()
        ));
    }
    let (attached, without_machine) = reattach_owners(svc, scope).await?;
    if attached + without_machine > 0 {
        summary.push_str(&format!(
            "; {attached} snapshots given back to their machine, {without_machine} left without one"
        ));
    }
    let unreadable = report.packs_unreadable.len() + report.snapshots_unreadable.len();
    if unreadable > 0 {
        summary.push_str(&format!("; {unreadable} objects unreadable"));
    }
    let mut tx = svc.db.begin().await?;
    record_both(
        &mut tx,
        actor,
        svc.now_ms(),
        scope,
        Action::VaultRebuild,
        "vault default",
        &summary,
    )
    .await?;
    tx.commit().await?;
    super::meter::run(svc, scope).await?;
    let mut result = serde_json::to_value(report).expect("plain figures");
    result["snapshots_reattached"] = attached.into();
    result["snapshots_without_machine"] = without_machine.into();
    Ok(result)
}

/// Snapshots the catalog lists but the service has no machine for (committed after the
/// copy the service database was restored from) go back to the active machine whose name
/// their manifest carries (the agent writes its machine's name there), when exactly one
/// has it. Answers how many went back, and how many found no machine.
async fn reattach_owners(svc: &Service, scope: &TenantScope) -> ServiceResult<(u64, u64)> {
    let Some(tv) = find(svc, scope).await? else {
        return Ok((0, 0));
    };
    let owned: HashSet<String> = snapshots::owned(&svc.db, scope)
        .await?
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let machines = machines::list(&svc.db, scope).await?;
    let (mut attached, mut without_machine) = (0, 0);
    for record in tv.vault.snapshots().await.map_err(store_error)? {
        let id = record.id.to_hex();
        if owned.contains(&id) {
            continue;
        }
        let mut named = machines
            .iter()
            .filter(|m| m.revoked_ms.is_none() && m.name == record.manifest.host);
        let (Some(machine), None) = (named.next(), named.next()) else {
            without_machine += 1;
            continue;
        };
        let facts = SnapshotFacts::of(&record.manifest);
        let mut tx = svc.db.begin().await?;
        machines::claim_snapshot(&mut tx, scope, &id, &machine.id, &facts, svc.now_ms()).await?;
        snapshots::set_facts(&mut tx, scope, &id, &facts).await?;
        tx.commit().await?;
        attached += 1;
    }
    Ok((attached, without_machine))
}
