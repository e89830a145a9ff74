//! Restore jobs: a user with `restore` asks one of the tenant's machines to restore a
//! snapshot into a directory (a files snapshot, whole or some paths) or onto a file or
//! device (an image snapshot). The machine's agent daemon finds the job with its plans,
//! performs it with the same code as `kura restore` (and its refusals: a non-empty target
//! without `overwrite`, a device too small) and reports. A job grants the machine read
//! access to that one snapshot while it is queued or running, so another machine's
//! snapshot can be restored onto it; the event log says whose snapshot it was.

use std::time::Duration;

use super::record_in;
use crate::audit::Action;
use crate::authz::{AgentPrincipal, Permission, UserPrincipal};
use crate::db::{machines, restores};
use crate::ids::{MachineId, RestoreId};
use crate::model::{RestoreRecord, RestoreReport, RestoreStatus};
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// A running job whose machine has not reported for this long is failed. The daemon
/// reports at least every 20 s.
pub const SILENT_AFTER: Duration = Duration::from_secs(10 * 60);

/// Most jobs one listing answers.
pub const MAX_LISTED: u32 = 200;

/// What a user asks for.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    pub snapshot_id: String,
    pub machine_id: String,
    pub target: String,
    pub paths: Vec<String>,
    pub overwrite: bool,
}

fn no_snapshot(id: &str) -> ServiceError {
    ServiceError::not_found(format!(
        "snapshot_id: no snapshot {id:?} in this tenant (use the full id from GET /api/v1/snapshots)"
    ))
}

fn no_job(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no restore job with id {id:?}"))
}

/// Checks a path a job names: absolute (for the target), no NUL, a sane length.
fn check_path(what: &str, path: &str, absolute: bool) -> ServiceResult<()> {
    if path.is_empty() || path.len() > 4096 || path.contains('\0') {
        return Err(ServiceError::invalid(format!(
            "{what}: {path:?} is not a path (1–4096 bytes, no NUL)"
        )));
    }
    if absolute && !path.starts_with('/') {
        return Err(ServiceError::invalid(format!(
            "{what}: {path:?} is not absolute; name the directory (or file or device) on the machine, e.g. /srv/restore"
        )));
    }
    Ok(())
}

/// Queues a restore job for a machine of the tenant.
pub async fn request(
    svc: &Service,
    user: &UserPrincipal,
    request: RestoreRequest,
) -> ServiceResult<RestoreRecord> {
    user.require(Permission::Restore)?;
    check_path("target", &request.target, true)?;
    for path in &request.paths {
        check_path("paths", path, false)?;
    }
    let snapshot = request.snapshot_id.to_ascii_lowercase();
    if snapshot.len() != 64 || !snapshot.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(no_snapshot(&request.snapshot_id));
    }
    let machine = MachineId::parse(&request.machine_id).ok_or_else(|| no_machine(&request.machine_id))?;
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let target_machine = machines::list(&mut tx, &user.scope)
        .await?
        .into_iter()
        .find(|m| m.id == machine && m.revoked_ms.is_none())
        .ok_or_else(|| no_machine(&request.machine_id))?;
    let (owner, kind) = restores::committed_snapshot(&mut tx, &user.scope, &snapshot)
        .await?
        .ok_or_else(|| no_snapshot(&request.snapshot_id))?;
    if kind.as_deref() == Some("image") && !request.paths.is_empty() {
        return Err(ServiceError::invalid(
            "paths: an image snapshot is restored whole onto a file or device; paths apply to files snapshots",
        ));
    }
    let job = RestoreRecord {
        id: RestoreId::generate(),
        machine_id: machine,
        snapshot_id: snapshot,
        snapshot_machine_id: owner,
        target: request.target,
        paths: request.paths,
        overwrite: request.overwrite,
        status: RestoreStatus::Queued,
        requested_by: user.login.clone(),
        queued_ms: now,
        started_ms: None,
        finished_ms: None,
        updated_ms: now,
        files: 0,
        bytes: 0,
        error: None,
    };
    restores::insert(&mut tx, &user.scope, &job).await?;
    let whose = if job.snapshot_machine_id == job.machine_id {
        "its own snapshot".to_owned()
    } else {
        format!("a snapshot of machine {}", job.snapshot_machine_id)
    };
    let result = format!(
        "ok: queued for {:?}: {whose} into {}{}",
        target_machine.name,
        job.target,
        if job.overwrite { " (overwrite)" } else { "" }
    );
    let target = format!("snapshot {} to machine {}", job.snapshot_id, job.machine_id);
    record_in(
        &mut tx,
        &user.actor,
        now,
        &user.scope,
        Action::RestoreRequest,
        &target,
        &result,
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

fn no_machine(id: &str) -> ServiceError {
    ServiceError::not_found(format!(
        "machine_id: no active machine with id {id:?} in this tenant"
    ))
}

/// One job of the tenant.
pub async fn get(svc: &Service, user: &UserPrincipal, id: &str) -> ServiceResult<RestoreRecord> {
    user.require(Permission::ViewStatus)?;
    let id = RestoreId::parse(id).ok_or_else(|| no_job(id))?;
    restores::get(&svc.db, &user.scope, &id)
        .await?
        .ok_or_else(|| no_job(id.as_str()))
}

/// The tenant's jobs, newest first; of one snapshot, if given.
pub async fn list(
    svc: &Service,
    user: &UserPrincipal,
    snapshot: Option<&str>,
) -> ServiceResult<Vec<RestoreRecord>> {
    user.require(Permission::ViewStatus)?;
    let snapshot = snapshot.map(str::to_ascii_lowercase);
    Ok(restores::list(&svc.db, &user.scope, snapshot.as_deref(), None, MAX_LISTED).await?)
}

/// The machine's queued jobs, oldest first.
pub async fn for_agent(svc: &Service, agent: &AgentPrincipal) -> ServiceResult<Vec<RestoreRecord>> {
    Ok(restores::queued_for(&svc.db, &agent.scope, &agent.machine_id).await?)
}

/// Snapshots (hex) the machine may read for its queued or running jobs.
pub async fn granted(svc: &Service, agent: &AgentPrincipal) -> ServiceResult<Vec<String>> {
    Ok(restores::granted(&svc.db, &agent.scope, &agent.machine_id).await?)
}

/// The machine's report on its job: `running` from `queued` starts it (again while
/// running: progress), a final status ends it. Repeating the final report answers the
/// job as stored.
pub async fn report(
    svc: &Service,
    agent: &AgentPrincipal,
    id: &str,
    report: RestoreReport,
) -> ServiceResult<RestoreRecord> {
    let job_id = RestoreId::parse(id).ok_or_else(|| no_job(id))?;
    if report.status == RestoreStatus::Queued {
        return Err(ServiceError::invalid(
            "status: a report says running, succeeded or failed",
        ));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let job = restores::get(&mut tx, &agent.scope, &job_id)
        .await?
        .filter(|job| job.machine_id == agent.machine_id)
        .ok_or_else(|| no_job(id))?;
    if job.status.is_final() {
        if job.status == report.status {
            return Ok(job);
        }
        return Err(ServiceError::conflict(format!(
            "restore job {id} has ended already ({})",
            job.status
        )));
    }
    if job.status == RestoreStatus::Queued && report.status.is_final() {
        return Err(ServiceError::conflict(format!(
            "restore job {id} has not started: report running first"
        )));
    }
    restores::report(&mut tx, &agent.scope, &job_id, &report, now).await?;
    if job.status == RestoreStatus::Queued {
        let target = format!("snapshot {} into {}", job.snapshot_id, job.target);
        let result = format!("ok: restore job {id} started");
        record_in(
            &mut tx,
            &agent.actor,
            now,
            &agent.scope,
            Action::RestoreStart,
            &target,
            &result,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(RestoreRecord {
        status: report.status,
        started_ms: job.started_ms.or(Some(now)),
        finished_ms: report.status.is_final().then_some(now),
        updated_ms: now,
        files: report.files,
        bytes: report.bytes,
        error: report.error,
        ..job
    })
}

/// Fails running jobs whose machine stopped reporting; answers how many.
pub async fn sweep(svc: &Service) -> ServiceResult<u64> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let failed = restores::fail_silent(
        &mut tx,
        now - duration_ms(SILENT_AFTER),
        now,
        "the machine stopped reporting on this restore (its daemon was stopped, or it lost its network); ask again",
    )
    .await?;
    tx.commit().await?;
    Ok(failed)
}
