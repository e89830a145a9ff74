//! `gc`: deletes what no snapshot of a tenant's vault needs any more (forgotten
//! snapshots, unreferenced chunks, packs of killed uploads) and repacks mostly-dead
//! packs. Safe while backups run.

use kura_store::GcOptions;
use serde_json::json;

use super::Progress;
use crate::audit::{Action, Actor};
use crate::authz::TenantScope;
use crate::ops::record;
use crate::ops::vault::{find, human_bytes, store_error};
use crate::{Service, ServiceResult};

pub(super) async fn run(
    svc: &Service,
    actor: &Actor,
    scope: &TenantScope,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    let Some(tv) = find(svc, scope).await? else {
        return Ok(json!({ "skipped": "this tenant has no vault yet" }));
    };
    progress.set("collecting garbage");
    let report = tv.vault.gc(GcOptions::default()).await.map_err(store_error)?;
    tv.refresh().await.map_err(store_error)?;
    let summary = format!(
        "ok: freed {} ({} packs deleted, {} repacked, {} forgotten snapshots purged)",
        human_bytes(report.bytes_freed),
        report.packs_deleted,
        report.packs_repacked,
        report.snapshots_purged
    );
    record(svc, actor, scope, Action::VaultGc, "vault default", &summary).await?;
    crate::ops::alerts::check_quota(svc, scope).await?;
    Ok(serde_json::to_value(report).expect("plain figures"))
}
