//! Background work: which job kinds exist and what each does ([`execute`]), when periodic
//! ones are due ([`queue_due`]), and the life of a run (claim, renew, finish, release),
//! all on the `jobs` table. The server's runner calls these from its scheduler loop; it
//! owns the loop, the worker tasks and the shutdown, not the rules.
//!
//! A run acts for the service itself (actor `service`, the job id as request id) and
//! records what it did in the tenant's event log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::audit::Actor;
use crate::authz::service_scope;
use crate::db::{jobs, outbox, tenants, terminations};
use crate::ids::TenantId;
use crate::model::{JobKind, JobRecord, JobStatus, NewJob, TenantStatus};
use crate::{Service, ServiceError, ServiceResult, duration_ms};

mod expiry;
mod gc;
mod mail;
mod metadata;
mod meter;
mod purge;
mod rebuild;
mod verify;

pub use mail::retry_delay;
pub use metadata::{MetadataBackupReport, MetadataBackupRun, MetadataBackupTask, NOT_CONFIGURED};
pub use verify::VerifyParams;

/// A run cut off (its server gone) this many times is failed instead of taken over again.
pub const MAX_ATTEMPTS: u32 = 3;

/// Who asked for runs the service queues itself.
pub const SCHEDULE: &str = "schedule";

/// What a run reports while it works, read by the runner when it renews the lease.
#[derive(Clone, Default)]
pub struct Progress(Arc<Mutex<Option<String>>>);

impl Progress {
    pub fn set(&self, text: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.into());
    }

    /// The latest report since the last call.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Queues a run now (or answers the run of the same kind, tenant and parameters that is
/// already queued or running).
pub async fn queue(
    svc: &Service,
    kind: JobKind,
    tenant_id: Option<&TenantId>,
    params: String,
    requested_by: &str,
) -> ServiceResult<JobRecord> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let new = NewJob {
        kind,
        tenant_id,
        params,
        requested_by,
        due_ms: now,
    };
    let (job, _) = jobs::enqueue(&mut tx, &new, now).await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(job)
}

/// Queues the periodic rounds that are due: gc, metering (and verify, when set) of every
/// tenant that is not terminated, expiry, the metadata backup (when the server takes
/// one), a new run of a purge that failed, and a mail
/// run whenever mail is waiting. With several
/// servers, the one that moves a schedule on queues its round. Answers the runs queued.
pub async fn queue_due(svc: &Service) -> ServiceResult<u32> {
    let settings = &svc.settings;
    let mut queued = 0;
    let rounds = [
        (JobKind::Gc, settings.gc_interval, String::from("{}")),
        (
            JobKind::Verify,
            settings.verify_interval,
            VerifyParams::scheduled(),
        ),
        (JobKind::Expiry, settings.expiry_interval, String::from("{}")),
        (JobKind::Meter, settings.meter_interval, String::from("{}")),
        (
            JobKind::MetadataBackup,
            if svc.metadata_backup.is_some() {
                settings.metadata_backup_interval
            } else {
                Duration::ZERO
            },
            String::from("{}"),
        ),
    ];
    for (kind, interval, params) in rounds {
        if interval.is_zero() {
            continue;
        }
        queued += queue_round(svc, kind, interval, &params).await?;
    }
    queued += retry_purges(svc).await?;
    if outbox::any_due(&svc.db, svc.now_ms()).await? {
        let mut tx = svc.db.begin().await?;
        let now = svc.now_ms();
        let new = NewJob {
            kind: JobKind::Mail,
            tenant_id: None,
            params: "{}".into(),
            requested_by: SCHEDULE,
            due_ms: now,
        };
        queued += u32::from(jobs::enqueue(&mut tx, &new, now).await?.1);
        tx.commit().await?;
    }
    Ok(queued)
}

/// A purge that failed (storage unreachable, say) is queued again an hour after: a
/// terminated tenant's data must not stay for want of a retry.
const PURGE_RETRY: Duration = Duration::from_secs(3600);

/// Queues a new run for every purge whose run failed at least [`PURGE_RETRY`] ago.
async fn retry_purges(svc: &Service) -> ServiceResult<u32> {
    let now = svc.now_ms();
    let stalled = terminations::stalled_purges(&svc.db, now - duration_ms(PURGE_RETRY)).await?;
    let mut queued = 0;
    for (tenant_id, failed_job) in stalled {
        let mut tx = svc.db.begin().await?;
        let new = NewJob {
            kind: JobKind::Purge,
            tenant_id: Some(&tenant_id),
            params: "{}".into(),
            requested_by: SCHEDULE,
            due_ms: now,
        };
        let (job, _) = jobs::enqueue(&mut tx, &new, now).await?;
        // Conditional on the failed run: another server may have queued the retry first.
        if terminations::replace_job(&mut tx, &service_scope(&tenant_id), &failed_job, &job.id).await? {
            tx.commit().await?;
            queued += 1;
        }
    }
    Ok(queued)
}

async fn queue_round(svc: &Service, kind: JobKind, interval: Duration, params: &str) -> ServiceResult<u32> {
    let now = svc.now_ms();
    let every = duration_ms(interval);
    // Read first: a round is due rarely, and every tick of every server asks.
    if jobs::schedule_due_at(&svc.db, kind.as_str())
        .await?
        .is_some_and(|next| next > now)
    {
        return Ok(0);
    }
    let mut tx = svc.db.begin().await?;
    if !jobs::take_schedule(&mut tx, kind.as_str(), now, now + every, now + every).await? {
        // Kept: a schedule seen for the first time was just written.
        tx.commit().await?;
        return Ok(0);
    }
    let targets: Vec<Option<TenantId>> = if kind.per_tenant() {
        tenants::list(&mut tx)
            .await?
            .into_iter()
            .filter(|t| t.status != TenantStatus::Terminated)
            .map(|t| Some(t.id))
            .collect()
    } else {
        vec![None]
    };
    let mut queued = 0;
    for tenant in &targets {
        let new = NewJob {
            kind,
            tenant_id: tenant.as_ref(),
            params: params.to_owned(),
            requested_by: SCHEDULE,
            due_ms: now,
        };
        queued += u32::from(jobs::enqueue(&mut tx, &new, now).await?.1);
    }
    tx.commit().await?;
    Ok(queued)
}

/// Takes one due run for `owner` (a server), holding it for `lease`; runs cut off too
/// often are failed first.
pub async fn claim(svc: &Service, owner: &str, lease: Duration) -> ServiceResult<Option<JobRecord>> {
    let now = svc.now_ms();
    jobs::fail_abandoned(&svc.db, now, MAX_ATTEMPTS).await?;
    Ok(jobs::claim(&svc.db, owner, now, now + duration_ms(lease)).await?)
}

/// Extends `owner`'s lease of a run and notes its progress; `false` when the lease was
/// lost (another server took the run over).
pub async fn renew(
    svc: &Service,
    job: &JobRecord,
    owner: &str,
    lease: Duration,
    progress: Option<&str>,
) -> ServiceResult<bool> {
    let until = svc.now_ms() + duration_ms(lease);
    Ok(jobs::renew(&svc.db, &job.id, owner, until, progress).await?)
}

/// Ends a run with its outcome: a result (JSON) or why it failed.
pub async fn finish(
    svc: &Service,
    job: &JobRecord,
    owner: &str,
    outcome: Result<serde_json::Value, String>,
) -> ServiceResult<bool> {
    let (status, result, error) = match &outcome {
        Ok(value) => (JobStatus::Succeeded, Some(value.to_string()), None),
        Err(why) => (JobStatus::Failed, None, Some(why.as_str())),
    };
    let end = jobs::Finish {
        status,
        result: result.as_deref(),
        error,
    };
    Ok(jobs::finish(&svc.db, &job.id, owner, &end, svc.now_ms()).await?)
}

/// Puts `owner`'s unfinished runs back in the queue (the server is stopping).
pub async fn release(svc: &Service, owner: &str) -> ServiceResult<u64> {
    Ok(jobs::release(&svc.db, owner).await?)
}

/// Does the work of a run; answers its result (JSON) or why it failed.
pub async fn execute(
    svc: &Service,
    job: &JobRecord,
    progress: &Progress,
) -> ServiceResult<serde_json::Value> {
    let actor = Actor {
        name: SCHEDULE_ACTOR.to_owned(),
        source: None,
        request_id: job.id.clone(),
    };
    let tenant = || {
        job.tenant_id
            .as_ref()
            .map(service_scope)
            .ok_or_else(|| ServiceError::invalid(format!("a {} job needs a tenant", job.kind)))
    };
    match job.kind {
        JobKind::Verify => {
            let params = parse_params::<VerifyParams>(job)?;
            verify::run(svc, &actor, &tenant()?, params, progress).await
        }
        JobKind::Gc => gc::run(svc, &actor, &tenant()?, progress).await,
        JobKind::Expiry => expiry::run(svc).await,
        JobKind::Mail => mail::run(svc, &actor, progress).await,
        JobKind::Meter => meter::run(svc, &tenant()?).await,
        JobKind::Purge => purge::run(svc, &actor, &tenant()?, job, progress).await,
        JobKind::RebuildCatalog => rebuild::run(svc, &actor, &tenant()?, progress).await,
        JobKind::MetadataBackup => metadata::run(svc, &actor).await,
    }
}

/// The actor of the service's own work in the event log.
pub const SCHEDULE_ACTOR: &str = "service";

fn parse_params<T: for<'de> Deserialize<'de>>(job: &JobRecord) -> ServiceResult<T> {
    serde_json::from_str(&job.params)
        .map_err(|err| ServiceError::invalid(format!("job {} has unreadable parameters: {err}", job.id)))
}
