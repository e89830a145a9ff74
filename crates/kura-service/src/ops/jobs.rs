//! Jobs as callers see them: an agent asks for its tenant's vault to be verified and
//! follows the run; operators list runs and start one now.

use crate::authz::{AgentPrincipal, OperatorPrincipal};
use crate::db::jobs as job_rows;
use crate::jobs::{self, VerifyParams};
use crate::model::{JobFilter, JobKind, JobRecord, JobStatus};
use crate::{Service, ServiceError, ServiceResult};

/// At most this many runs per listing.
pub const MAX_LIST: u32 = 1000;

/// Queues a check of the caller's tenant vault (a run already queued with the same
/// parameters is the answer).
pub async fn request_verify(
    svc: &Service,
    agent: &AgentPrincipal,
    read_data: bool,
) -> ServiceResult<JobRecord> {
    super::vault::open(svc, agent).await?;
    jobs::queue(
        svc,
        JobKind::Verify,
        Some(agent.scope.tenant_id()),
        VerifyParams { read_data }.to_json(),
        &agent.actor.name,
    )
    .await
}

/// A run the calling agent asked for; any other (another machine's, another tenant's) is
/// "not found" like an unknown one.
pub async fn agent_job(svc: &Service, agent: &AgentPrincipal, id: &str) -> ServiceResult<JobRecord> {
    job_rows::get_for_tenant(&svc.db, &agent.scope, id)
        .await?
        .filter(|job| job.requested_by == agent.actor.name)
        .ok_or_else(|| ServiceError::not_found(format!("no job {id:?} of this machine")))
}

fn unknown_kind(kind: &str) -> ServiceError {
    let known: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    ServiceError::invalid(format!(
        "unknown job kind {kind:?}: use one of {}",
        known.join(", ")
    ))
}

/// The filter of an operator's listing, from the query's texts.
pub fn filter(
    kind: Option<&str>,
    status: Option<&str>,
    tenant_id: Option<&str>,
    limit: Option<u32>,
) -> ServiceResult<JobFilter> {
    let kind = kind
        .map(|k| JobKind::parse(k).ok_or_else(|| unknown_kind(k)))
        .transpose()?;
    let status = status
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ServiceError::invalid(format!(
                    "unknown job status {s:?}: use one of queued, running, succeeded, failed"
                ))
            })
        })
        .transpose()?;
    let tenant_id = tenant_id
        .map(|t| {
            crate::ids::TenantId::parse(t).ok_or_else(|| {
                ServiceError::invalid(format!("tenant {t:?} is not a tenant id (32 hex digits)"))
            })
        })
        .transpose()?;
    let limit = limit.unwrap_or(200);
    if limit == 0 || limit > MAX_LIST {
        return Err(ServiceError::invalid(format!(
            "limit must be between 1 and {MAX_LIST}"
        )));
    }
    Ok(JobFilter {
        kind,
        status,
        tenant_id,
        limit,
    })
}

/// Runs matching the filter, newest first.
pub async fn list(
    svc: &Service,
    _operator: &OperatorPrincipal,
    filter: &JobFilter,
) -> ServiceResult<Vec<JobRecord>> {
    Ok(job_rows::list(&svc.db, filter).await?)
}

/// One run, whatever its tenant.
pub async fn get(svc: &Service, _operator: &OperatorPrincipal, id: &str) -> ServiceResult<JobRecord> {
    job_rows::get(&svc.db, id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no job {id:?}")))
}

/// Queues a run now for an operator: gc or verify (reading every pack) of one tenant's
/// vault, or expiry or mail for the service. A run of the same kind already queued or
/// running is the answer.
pub async fn run_now(
    svc: &Service,
    operator: &OperatorPrincipal,
    kind: &str,
    tenant_id: Option<&str>,
) -> ServiceResult<JobRecord> {
    let kind = JobKind::parse(kind).ok_or_else(|| unknown_kind(kind))?;
    if kind == JobKind::Purge {
        return Err(ServiceError::invalid(
            "a purge is queued by terminating the tenant: use terminate, or purge-now on a terminated tenant",
        ));
    }
    if kind == JobKind::MetadataBackup && svc.metadata_backup.is_none() {
        return Err(ServiceError::invalid(jobs::NOT_CONFIGURED));
    }
    let tenant = match (kind.per_tenant(), tenant_id) {
        (true, None) => {
            return Err(ServiceError::invalid(format!(
                "a {kind} job runs on one tenant's vault: give tenant_id"
            )));
        }
        (false, Some(_)) => {
            return Err(ServiceError::invalid(format!(
                "{kind} jobs are for the whole service: leave tenant_id out"
            )));
        }
        (true, Some(id)) => Some(super::tenants::contract(svc, operator, id).await?.1.id),
        (false, None) => None,
    };
    let params = match kind {
        JobKind::Verify => VerifyParams { read_data: true }.to_json(),
        _ => "{}".to_owned(),
    };
    let requested_by = format!("operator:{}", operator.name());
    jobs::queue(svc, kind, tenant.as_ref(), params, &requested_by).await
}
