//! `purge`: erases a terminated tenant's data when its termination's grace ends, and
//! leaves a signed deletion record.
//!
//! In order: count what the tenant has in storage and note it (before anything is
//! deleted, so a purge cut off and run again still reports what there was); erase the
//! vault (objects, catalog, the server's folders for it); then, in one transaction,
//! delete the tenant's rows (users with their personal data, machines, plans, runs, …),
//! store the signed record and log `tenant.purge`. Kept: the tenant row (terminated),
//! its event log, its jobs, its usage history.

use serde_json::json;

use super::Progress;
use crate::audit::{Action, Actor};
use crate::authz::TenantScope;
use crate::db::{tenants, terminations};
use crate::ids::DeletionId;
use crate::model::{DELETION_RECORD_FORMAT, DeletionRecord, JobRecord, PurgeCounts};
use crate::ops::terminations::{record_both, sign, subject};
use crate::ops::vault::{human_bytes, store_error};
use crate::{Service, ServiceError, ServiceResult, rfc3339};

pub(super) async fn run(
    svc: &Service,
    actor: &Actor,
    scope: &TenantScope,
    job: &JobRecord,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    let termination = terminations::get(&svc.db, scope).await?.ok_or_else(|| {
        ServiceError::conflict(
            "this tenant is not terminated (its termination was withdrawn): nothing to purge",
        )
    })?;
    if termination.job_id != job.id {
        return Err(ServiceError::conflict(format!(
            "this tenant's purge is job {}, not this one",
            termination.job_id
        )));
    }
    let tenant = tenants::get(&svc.db, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let (counted, started_ms) = match (termination.counted, termination.purge_started_ms) {
        (Some(counted), Some(started)) => (counted, started),
        _ => {
            progress.set("counting the tenant's objects");
            let (objects, snapshots) = svc.vaults.measure(scope).await.map_err(store_error)?;
            let counted = PurgeCounts {
                objects: objects.objects,
                bytes: objects.bytes,
                snapshots,
            };
            let now = svc.now_ms();
            terminations::start_purge(&svc.db, scope, &counted, now).await?;
            (counted, now)
        }
    };
    progress.set(format!(
        "erasing {} objects ({})",
        counted.objects,
        human_bytes(counted.bytes)
    ));
    svc.vaults.erase(scope).await.map_err(store_error)?;

    let mut tx = svc.db.begin().await?;
    let erased = terminations::erase_tenant_rows(&mut tx, scope, &job.id).await?;
    let now = svc.now_ms();
    let id = DeletionId::generate();
    let record = DeletionRecord {
        format: DELETION_RECORD_FORMAT.into(),
        id: id.to_string(),
        tenant_id: tenant.id.to_string(),
        service_code: tenant.service_code.clone(),
        tenant_name: tenant.name.clone(),
        service: svc.public_url.to_string(),
        terminated_at: rfc3339(termination.terminated_ms),
        terminated_by: termination.terminated_by.clone(),
        purge_started_at: rfc3339(started_ms),
        purged_at: rfc3339(now),
        storage: svc.vaults.location(scope),
        objects_deleted: counted.objects,
        bytes_deleted: counted.bytes,
        snapshots_deleted: counted.snapshots,
        users_deleted: erased.users,
        machines_deleted: erased.machines,
        job_id: job.id.clone(),
    };
    let signed = serde_json::to_string_pretty(&sign(svc, record)).expect("a deletion record is plain data");
    terminations::insert_record(&mut tx, scope, &id, &tenant.service_code, &signed, now).await?;
    terminations::finish_purge(&mut tx, scope, now).await?;
    let result = format!(
        "ok: {} objects ({}), {} snapshots, {} users, {} machines, {} rows deleted; deletion record {id}",
        counted.objects,
        human_bytes(counted.bytes),
        counted.snapshots,
        erased.users,
        erased.machines,
        erased.rows
    );
    record_both(
        &mut tx,
        actor,
        now,
        scope,
        Action::TenantPurge,
        &subject(&tenant),
        &result,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, deletion_record = %id, objects = counted.objects, bytes = counted.bytes, "tenant purged");
    Ok(json!({
        "deletion_record": id.to_string(),
        "objects_deleted": counted.objects,
        "bytes_deleted": counted.bytes,
        "snapshots_deleted": counted.snapshots,
        "users_deleted": erased.users,
        "machines_deleted": erased.machines,
        "rows_deleted": erased.rows,
    }))
}
