//! `verify`: checks a tenant's vault without its key — the catalog, and with `read_data`
//! every pack against its content hash — and, when that finds damage, heals what the
//! vault can heal from its own bytes (`kura_store::Vault::repair`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Progress;
use crate::audit::{Action, Actor};
use crate::authz::TenantScope;
use crate::ops::record;
use crate::ops::vault::{find, store_error};
use crate::{Service, ServiceResult};

/// What a verify run is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// Read every pack back, not only the catalog.
    pub read_data: bool,
}

impl VerifyParams {
    pub fn to_json(self) -> String {
        serde_json::to_string(&self).expect("plain fields")
    }

    /// The periodic round reads everything: only that finds damaged bytes.
    pub fn scheduled() -> String {
        VerifyParams { read_data: true }.to_json()
    }
}

pub(super) async fn run(
    svc: &Service,
    actor: &Actor,
    scope: &TenantScope,
    params: VerifyParams,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    let Some(tv) = find(svc, scope).await? else {
        return Ok(json!({ "skipped": "this tenant has no vault yet" }));
    };
    progress.set(if params.read_data {
        "reading every pack"
    } else {
        "checking the catalog"
    });
    let report = tv
        .vault
        .verify(
            kura_store::VerifyScope {
                read_data: params.read_data,
            },
            None,
        )
        .await
        .map_err(store_error)?;
    let repair = if params.read_data && !report.is_clean() {
        progress.set("repairing what the vault can heal");
        let repair = tv.vault.repair(None).await.map_err(store_error)?;
        tv.refresh().await.map_err(store_error)?;
        Some(repair)
    } else {
        None
    };
    let mut summary = format!(
        "{}: {} snapshots, {} packs, {} bytes read",
        if report.is_clean() { "ok" } else { "damage found" },
        report.snapshots_checked,
        report.packs_checked,
        report.bytes_read
    );
    if !report.is_clean() {
        summary.push_str(&format!(
            "; damaged: {} chunks, {} packs, {} snapshots",
            report.damaged_chunks.len(),
            report.damaged_packs.len(),
            report.damaged_snapshots.len()
        ));
    }
    if let Some(repair) = &repair {
        summary.push_str(&format!(
            "; repair rewrote {} packs, cleared {} marks; {}",
            repair.packs_rewritten.len(),
            repair.marks_cleared,
            if repair.is_healed() {
                "healed".to_owned()
            } else {
                format!(
                    "{} snapshots still damaged (their data exists nowhere else: back up again or forget them)",
                    repair.remaining.damaged_snapshots.len()
                )
            }
        ));
    }
    record(svc, actor, scope, Action::VaultVerify, "vault default", &summary).await?;
    // Damage that repair healed needs nobody; damage left behind, or found by a round
    // that only read the catalog, does.
    let damage_left = match &repair {
        Some(repair) => !repair.is_healed(),
        None => !report.is_clean(),
    };
    crate::ops::alerts::after_verify(svc, scope, damage_left.then(|| summary.clone())).await?;
    Ok(json!({ "report": report, "repair": repair }))
}
