//! Termination and erasure (解約とデータ消去): an operator terminates a tenant's contract;
//! the tenant is locked out at once and a `purge` job is due after `purge_after_days`
//! (0–30). Until the purge starts, the termination can be withdrawn. The purge (see
//! `jobs::purge`) erases the tenant's vault and rows and leaves a deletion record signed
//! with the service's Ed25519 key, which anyone holding the public key can check offline.

use serde::{Deserialize, Serialize};

use crate::audit::{Action, Actor};
use crate::authz::{Caller, ContractScope, OperatorPrincipal, TenantKey};
use crate::db::terminations::{self, NewTermination};
use crate::db::{Tx, jobs, outbox, tenants, users};
use crate::ids::DeletionId;
use crate::mail::MailContent;
use crate::model::{
    ApprovalAction, DELETION_RECORD_FORMAT, DeletionRecord, DeletionSummary, JobKind, MailAudience, NewJob,
    NewMail, RecordSignature, SignedDeletionRecord, TenantRecord, TenantStatus, TerminationRecord,
};
use crate::ops::approvals::{self, Authority, Gated, Held};
use crate::ops::record_in;
use crate::{Service, ServiceError, ServiceResult};

/// The longest a terminated tenant's data is kept (the contract's promise).
pub const MAX_PURGE_AFTER_DAYS: u32 = 30;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// `POST /api/v1/operator/tenants/{id}/terminate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateRequest {
    /// Days until the tenant's data is purged, 0–30; 30 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_after_days: Option<u32>,
}

/// Terminates the tenant's contract: its status becomes `terminated` (every session, API
/// token, agent credential and registration token of it stops working, since each is
/// checked against the status; portal sessions end outright), and its purge is queued.
/// Under the two-person rule it waits for a second operator-admin instead.
pub async fn terminate(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    scope: &ContractScope,
    request: &TerminateRequest,
) -> ServiceResult<Gated<(TenantRecord, TerminationRecord)>> {
    let authority = Authority {
        operator,
        caller,
        approval: None,
    };
    terminate_as(svc, &authority, scope, request).await
}

/// [`terminate`], asked for directly or carrying out an approved request.
pub(crate) async fn terminate_as(
    svc: &Service,
    authority: &Authority<'_>,
    scope: &ContractScope,
    request: &TerminateRequest,
) -> ServiceResult<Gated<(TenantRecord, TerminationRecord)>> {
    let days = request.purge_after_days.unwrap_or(MAX_PURGE_AFTER_DAYS);
    if days > MAX_PURGE_AFTER_DAYS {
        return Err(ServiceError::invalid(format!(
            "purge_after_days must be 0 to {MAX_PURGE_AFTER_DAYS}: a terminated tenant's data is erased within {MAX_PURGE_AFTER_DAYS} days"
        )));
    }
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::lock(&mut tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    if tenant.status == TenantStatus::Terminated {
        let due = terminations::get(&mut tx, scope)
            .await?
            .map(|t| format!(": its purge is due {}", crate::rfc3339(t.purge_due_ms)))
            .unwrap_or_default();
        return Err(ServiceError::conflict(format!(
            "tenant {} is already terminated{due}",
            tenant.service_code
        )));
    }
    let target = subject(&tenant);
    let held = Held {
        action: ApprovalAction::TerminateTenant,
        tenant_id: Some(&tenant.id),
        target: &target,
        params: request,
        summary: format!(
            "terminate tenant {} ({}); its data is purged after {days} days",
            tenant.service_code, tenant.name
        ),
        details: &[
            ("code", tenant.service_code.clone()),
            ("name", tenant.name.clone()),
            ("days", days.to_string()),
        ],
    };
    if let Some(waiting) = approvals::hold(svc, &mut tx, now, authority, held).await? {
        tx.commit().await?;
        return Ok(Gated::AwaitingApproval(Box::new(waiting)));
    }
    let operator = authority.operator;
    let credited = authority.credited();
    let purge_due_ms = now + i64::from(days) * DAY_MS;
    let job = NewJob {
        kind: JobKind::Purge,
        tenant_id: Some(scope.tenant_id()),
        params: "{}".into(),
        requested_by: &credited,
        due_ms: purge_due_ms,
    };
    let (job, _) = jobs::enqueue(&mut tx, &job, now).await?;
    let new = NewTermination {
        status_before: tenant.status,
        terminated_by: &credited,
        purge_due_ms,
        job_id: &job.id,
    };
    terminations::insert(&mut tx, scope, &new, now).await?;
    let tenant = tenants::set_status(&mut tx, scope, TenantStatus::Terminated)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let sessions = terminations::end_sessions(&mut tx, scope).await?;
    let mailed = mail_admins(svc, &mut tx, scope, &tenant, purge_due_ms, now).await?;
    let result = format!(
        "ok: was {}, purge due {} (job {}), {sessions} portal sessions ended, {mailed} admins mailed{}",
        new.status_before.as_str(),
        crate::rfc3339(purge_due_ms),
        job.id,
        authority.result_note()
    );
    record_both(
        &mut tx,
        &operator.actor(authority.caller),
        now,
        scope,
        Action::TenantTerminate,
        &target,
        &result,
    )
    .await?;
    let termination = terminations::get(&mut tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    tx.commit().await?;
    svc.wake_runner();
    tracing::info!(tenant_id = %tenant.id, operator = %credited, purge_due = %crate::rfc3339(purge_due_ms), "tenant terminated");
    Ok(Gated::Done((tenant, termination)))
}

/// Tells the tenant's admins (those with a mail address) that the contract has ended and
/// when their data is erased, in the same transaction as the termination. Answers how many.
async fn mail_admins(
    svc: &Service,
    tx: &mut Tx,
    scope: &ContractScope,
    tenant: &TenantRecord,
    purge_due_ms: i64,
    now: i64,
) -> ServiceResult<usize> {
    if !svc.settings.mail_enabled {
        return Ok(0);
    }
    let recipients = users::mail_recipients(tx, scope, MailAudience::Admins).await?;
    for recipient in &recipients {
        let mail = NewMail {
            recipient: recipient.email.clone(),
            language: recipient.language,
            content: MailContent::TenantTerminated {
                tenant: tenant.name.clone(),
                service_code: tenant.service_code.clone(),
                purge_due_ms,
                time_zone: tenant.time_zone.clone(),
            },
            // Worth sending for as long as there is something to say: until the purge.
            give_up_ms: purge_due_ms.max(now + DAY_MS),
        };
        outbox::queue(&mut *tx, scope, &mail, now).await?;
    }
    Ok(recipients.len())
}

/// Has a terminated tenant's purge run now instead of when its grace period ends. Under
/// the two-person rule it waits for a second operator-admin instead.
pub async fn purge_now(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    scope: &ContractScope,
) -> ServiceResult<Gated<TenantRecord>> {
    let authority = Authority {
        operator,
        caller,
        approval: None,
    };
    purge_now_as(svc, &authority, scope).await
}

/// [`purge_now`], asked for directly or carrying out an approved request.
pub(crate) async fn purge_now_as(
    svc: &Service,
    authority: &Authority<'_>,
    scope: &ContractScope,
) -> ServiceResult<Gated<TenantRecord>> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::lock(&mut tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let termination = terminations::get(&mut tx, scope).await?.ok_or_else(|| {
        ServiceError::conflict(format!(
            "tenant {} is not terminated: terminate it first (with purge_after_days 0 to purge at once)",
            tenant.service_code
        ))
    })?;
    let started = || ServiceError::conflict("the purge of this tenant has started already");
    if termination.purge_started_ms.is_some() {
        return Err(started());
    }
    let target = subject(&tenant);
    let held = Held {
        action: ApprovalAction::PurgeNow,
        tenant_id: Some(&tenant.id),
        target: &target,
        params: &(),
        summary: format!(
            "purge tenant {} now instead of {}",
            tenant.service_code,
            crate::rfc3339(termination.purge_due_ms)
        ),
        details: &[("code", tenant.service_code.clone())],
    };
    if let Some(waiting) = approvals::hold(svc, &mut tx, now, authority, held).await? {
        tx.commit().await?;
        return Ok(Gated::AwaitingApproval(Box::new(waiting)));
    }
    // Conditional on the job still waiting: a runner that took it first wins.
    if !jobs::make_due(&mut tx, &termination.job_id, now).await? {
        return Err(started());
    }
    terminations::set_purge_due(&mut tx, scope, now).await?;
    let result = format!(
        "ok: purge due now instead of {} (job {}){}",
        crate::rfc3339(termination.purge_due_ms),
        termination.job_id,
        authority.result_note()
    );
    record_both(
        &mut tx,
        &authority.operator.actor(authority.caller),
        now,
        scope,
        Action::TenantPurgeNow,
        &target,
        &result,
    )
    .await?;
    tx.commit().await?;
    svc.wake_runner();
    Ok(Gated::Done(tenant))
}

/// Withdraws a termination whose purge has not started: the purge job is taken out of the
/// queue and the tenant gets back the status it had (users sign in again; tokens and
/// agents work again).
pub async fn cancel(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    scope: &ContractScope,
) -> ServiceResult<TenantRecord> {
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let termination = terminations::get(&mut tx, scope).await?.ok_or_else(|| {
        ServiceError::conflict("this tenant is not terminated: there is nothing to withdraw")
    })?;
    let started = || {
        ServiceError::conflict(
            "the purge of this tenant has started: its termination can no longer be withdrawn",
        )
    };
    if termination.purge_started_ms.is_some() {
        return Err(started());
    }
    // Conditional on the job still waiting: a runner that took it first wins.
    if !jobs::delete_queued(&mut tx, &termination.job_id).await? {
        return Err(started());
    }
    terminations::delete(&mut tx, scope).await?;
    let tenant = tenants::set_status(&mut tx, scope, termination.status_before)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let result = format!("ok: status {} again", tenant.status.as_str());
    record_both(
        &mut tx,
        &operator.actor(caller),
        now,
        scope,
        Action::TenantTerminationCancel,
        &subject(&tenant),
        &result,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, operator = operator.name(), "termination withdrawn");
    Ok(tenant)
}

/// The tenant's termination, if it is terminated.
pub async fn termination(svc: &Service, scope: &ContractScope) -> ServiceResult<Option<TerminationRecord>> {
    Ok(terminations::get(&svc.db, scope).await?)
}

/// How events name a tenant.
pub(crate) fn subject(tenant: &TenantRecord) -> String {
    format!("tenant {} ({})", tenant.service_code, tenant.id)
}

/// Records `action` in the tenant's log and in the operator work log.
pub(crate) async fn record_both(
    tx: &mut Tx,
    actor: &Actor,
    now: i64,
    scope: &impl TenantKey,
    action: Action,
    target: &str,
    result: &str,
) -> ServiceResult<()> {
    record_in(tx, actor, now, scope, action, target, result).await?;
    super::operator_accounts::log_in(tx, actor, now, action, target, result).await
}

/// Signs a deletion record with the service's key.
pub(crate) fn sign(svc: &Service, record: DeletionRecord) -> SignedDeletionRecord {
    let signature = svc.key.sign(&canonical(&record));
    SignedDeletionRecord {
        record,
        signature: RecordSignature {
            algorithm: "ed25519".into(),
            public_key: encode_key(&svc.key),
            value: data_encoding::BASE64.encode(&signature),
        },
    }
}

/// The bytes a record's signature covers (see [`DeletionRecord`]).
fn canonical(record: &DeletionRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("a deletion record is plain data")
}

/// Why a signed deletion record does not check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordCheckError {
    #[error("this is not a Kura deletion record: {0}")]
    Unreadable(String),
    #[error("the record's format is {0:?}; this version checks {DELETION_RECORD_FORMAT:?}")]
    UnknownFormat(String),
    #[error("the record is signed with {0:?}; only ed25519 is used")]
    UnknownAlgorithm(String),
    #[error(
        "the record was signed by key {signed_by}, not by the service's key {expected}: it is not this service's record"
    )]
    OtherKey { signed_by: String, expected: String },
    #[error("the signature does not match the record: it was altered after signing, or is forged")]
    BadSignature,
}

/// Checks a signed deletion record (its JSON) against the service's public key (base64):
/// answers the record when the signature is the service's and covers it unchanged.
pub fn check_record(json: &str, public_key: &str) -> Result<DeletionRecord, RecordCheckError> {
    let signed: SignedDeletionRecord =
        serde_json::from_str(json).map_err(|e| RecordCheckError::Unreadable(e.to_string()))?;
    if signed.record.format != DELETION_RECORD_FORMAT {
        return Err(RecordCheckError::UnknownFormat(signed.record.format));
    }
    if signed.signature.algorithm != "ed25519" {
        return Err(RecordCheckError::UnknownAlgorithm(signed.signature.algorithm));
    }
    let expected = public_key.trim();
    if signed.signature.public_key != expected {
        return Err(RecordCheckError::OtherKey {
            signed_by: signed.signature.public_key,
            expected: expected.to_owned(),
        });
    }
    let key = data_encoding::BASE64
        .decode(expected.as_bytes())
        .map_err(|_| RecordCheckError::BadSignature)?;
    let signature = data_encoding::BASE64
        .decode(signed.signature.value.as_bytes())
        .map_err(|_| RecordCheckError::BadSignature)?;
    if !crate::secrets::signature_valid(&key, &canonical(&signed.record), &signature) {
        return Err(RecordCheckError::BadSignature);
    }
    Ok(signed.record)
}

/// The service's public key for deletion records, base64.
pub fn public_key(svc: &Service) -> String {
    encode_key(&svc.key)
}

/// The public signing key of a service key, base64.
pub fn encode_key(key: &crate::secrets::ServiceKey) -> String {
    data_encoding::BASE64.encode(&key.signing_public_key())
}

/// Every deletion record, newest first.
pub async fn deletions(svc: &Service, _operator: &OperatorPrincipal) -> ServiceResult<Vec<DeletionSummary>> {
    Ok(terminations::list_records(&svc.db).await?)
}

/// The deletion record of a purged tenant.
pub async fn deletion_of(svc: &Service, scope: &ContractScope) -> ServiceResult<Option<DeletionSummary>> {
    Ok(terminations::record_of(&svc.db, scope).await?)
}

/// One signed deletion record, as stored.
pub async fn deletion(svc: &Service, _operator: &OperatorPrincipal, id: &str) -> ServiceResult<String> {
    let not_found = || ServiceError::not_found(format!("no deletion record {id}"));
    let id = DeletionId::parse(id).ok_or_else(not_found)?;
    terminations::record(&svc.db, &id).await?.ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DeletionRecord {
        DeletionRecord {
            format: DELETION_RECORD_FORMAT.into(),
            id: "0".repeat(32),
            tenant_id: "1".repeat(32),
            service_code: "ACME-0001".into(),
            tenant_name: "ACME".into(),
            service: "https://backup.example.jp".into(),
            terminated_at: "2030-01-01T00:00:00Z".into(),
            terminated_by: "ops".into(),
            purge_started_at: "2030-01-31T00:00:00Z".into(),
            purged_at: "2030-01-31T00:00:05Z".into(),
            storage: "s3://kura/t/1111/".into(),
            objects_deleted: 12,
            bytes_deleted: 3456,
            snapshots_deleted: 2,
            users_deleted: 3,
            machines_deleted: 1,
            job_id: "2".repeat(32),
        }
    }

    fn signed_with(key: &crate::secrets::ServiceKey, record: DeletionRecord) -> String {
        let signature = key.sign(&canonical(&record));
        serde_json::to_string_pretty(&SignedDeletionRecord {
            record,
            signature: RecordSignature {
                algorithm: "ed25519".into(),
                public_key: encode_key(key),
                value: data_encoding::BASE64.encode(&signature),
            },
        })
        .unwrap()
    }

    #[test]
    fn records_check_only_unchanged_and_with_the_service_key() {
        let key = crate::secrets::ServiceKey::from_hex(&crate::secrets::ServiceKey::generate_hex()).unwrap();
        let public = encode_key(&key);
        let json = signed_with(&key, record());
        assert_eq!(check_record(&json, &public).unwrap(), record());

        let altered = json.replace("\"bytes_deleted\": 3456", "\"bytes_deleted\": 3457");
        assert_ne!(altered, json);
        assert_eq!(
            check_record(&altered, &public),
            Err(RecordCheckError::BadSignature)
        );

        let other =
            crate::secrets::ServiceKey::from_hex(&crate::secrets::ServiceKey::generate_hex()).unwrap();
        let forged = signed_with(&other, record());
        assert!(matches!(
            check_record(&forged, &public),
            Err(RecordCheckError::OtherKey { .. })
        ));
        let extra = json.replacen("\"format\"", "\"note\": \"x\", \"format\"", 1);
        assert!(matches!(
            check_record(&extra, &public),
            Err(RecordCheckError::Unreadable(_))
        ));
        assert!(matches!(
            check_record("{}", &public),
            Err(RecordCheckError::Unreadable(_))
        ));
    }
}
