//! Support access with consent: a tenant admin grants operators a time-limited look at
//! the tenant's data (at most 72 hours) and can withdraw it. The operator's scope for
//! customer data comes from `authz::support_scope`, which checks the grant.

use super::record_in;
use crate::audit::Action;
use crate::authz::UserPrincipal;
use crate::db::tenants;
use crate::model::TenantRecord;
use crate::{Service, ServiceError, ServiceResult, rfc3339};

/// The longest grant.
pub const MAX_SUPPORT_HOURS: u32 = 72;

/// Until when support access is granted, if it is now.
pub fn active_until(tenant: &TenantRecord, now_ms: i64) -> Option<i64> {
    tenant.support_until_ms.filter(|until| now_ms < *until)
}

/// Grants support access for `hours` from now (replacing any earlier grant), or
/// withdraws it (`None`).
pub async fn set(svc: &Service, admin: &UserPrincipal, hours: Option<u32>) -> ServiceResult<TenantRecord> {
    if hours.is_some_and(|hours| !(1..=MAX_SUPPORT_HOURS).contains(&hours)) {
        return Err(ServiceError::invalid(format!(
            "hours must be between 1 and {MAX_SUPPORT_HOURS}"
        )));
    }
    let now = svc.now_ms();
    let until = hours.map(|hours| now.saturating_add(i64::from(hours) * 3_600_000));
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::set_support_access(&mut tx, &admin.scope, until)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let (action, result) = match until {
        Some(until) => (Action::SupportGrant, format!("ok: until {}", rfc3339(until))),
        None => (Action::SupportRevoke, "ok".to_owned()),
    };
    record_in(
        &mut tx,
        &admin.actor,
        now,
        &admin.scope,
        action,
        "support access",
        &result,
    )
    .await?;
    tx.commit().await?;
    Ok(tenant)
}

/// One of a tenant's snapshots as an operator sees it under support access: when, from
/// which machine, what and how much — the manifest's public facts, never file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedSnapshot {
    pub id: String,
    pub time_ns: i64,
    /// The registered machine that committed it, if the service knows it.
    pub machine: Option<String>,
    pub source: String,
    pub kind: kura_format::SnapshotKind,
    /// Logical bytes of its files or image.
    pub bytes: u64,
    pub files: u64,
    /// It references a chunk the vault holds damaged or no longer holds.
    pub damaged: bool,
}

/// The tenant's snapshots, newest first, and its vault's figures; refused unless a tenant
/// admin has granted support access that is still live.
pub async fn snapshots(
    svc: &Service,
    operator: &crate::authz::OperatorPrincipal,
    tenant_id: &str,
) -> ServiceResult<(Vec<SupportedSnapshot>, kura_store::Usage)> {
    let (contract, _) = super::tenants::contract(svc, operator, tenant_id).await?;
    let scope = crate::authz::support_scope(svc, &contract).await?;
    let Some(tv) = super::vault::find(svc, &scope).await? else {
        return Ok((Vec::new(), kura_store::Usage::default()));
    };
    let records = tv.vault.snapshots().await.map_err(super::vault::store_error)?;
    let ids: Vec<String> = records.iter().map(|r| r.id.to_hex()).collect();
    let owners: std::collections::HashMap<String, String> =
        crate::db::snapshots::owners(&svc.db, &scope, &ids)
            .await?
            .into_iter()
            .map(|o| (o.snapshot_id, o.machine_name))
            .collect();
    let mut out = Vec::with_capacity(records.len());
    for record in records.iter().rev() {
        let id = record.id.to_hex();
        let damaged = tv
            .vault
            .is_damaged(&record.id)
            .await
            .map_err(super::vault::store_error)?;
        let manifest = &record.manifest;
        out.push(SupportedSnapshot {
            machine: owners.get(&id).cloned(),
            id,
            time_ns: manifest.time_ns,
            source: manifest.source.clone(),
            kind: manifest.kind,
            bytes: manifest.stats.bytes,
            files: manifest.stats.files,
            damaged,
        });
    }
    let usage = tv.vault.usage().await.map_err(super::vault::store_error)?;
    Ok((out, usage))
}
