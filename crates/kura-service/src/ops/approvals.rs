//! The two-person rule (四つの目の原則): while the service has two or more enabled
//! operator-admin accounts, a destructive operator action — terminating a tenant, purging
//! one now, lowering a tenant's immutability period, deleting an operator account — is
//! not carried out when asked for. It waits as a request that another operator-admin
//! approves (and the action is then carried out unchanged) or rejects, within 24 hours.
//! Both names are in the operator work log. With one operator-admin there is no second
//! person to ask, and the actions run at once, as before.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::Action;
use crate::authz::{Caller, ContractScope, OperatorPrincipal, ProviderRole, service_scope};
use crate::db::approvals::{self, NewApproval};
use crate::db::{Tx, operators, outbox};
use crate::ids::{ApprovalId, OperatorId, TenantId};
use crate::mail::MailContent;
use crate::model::{ApprovalAction, ApprovalRecord, ApprovalStatus, NewMail};
use crate::ops::tenants::UpdateTenantRequest;
use crate::ops::terminations::{TerminateRequest, record_both};
use crate::{Service, ServiceError, ServiceResult, rfc3339};

/// How long a request waits for a second operator-admin.
pub const APPROVAL_TTL_MS: i64 = 24 * 3600 * 1000;

/// How far back the list shows decided and expired requests.
const RECENT_MS: i64 = 30 * 24 * 3600 * 1000;

/// The answer of an operation under the two-person rule: carried out, or waiting.
#[derive(Debug)]
pub enum Gated<T> {
    Done(T),
    AwaitingApproval(Box<ApprovalRecord>),
}

impl<T> Gated<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Gated<U> {
        match self {
            Gated::Done(done) => Gated::Done(f(done)),
            Gated::AwaitingApproval(request) => Gated::AwaitingApproval(request),
        }
    }
}

/// A destructive request, as an operation files it for approval.
pub(crate) struct Held<'a, P: Serialize> {
    pub action: ApprovalAction,
    pub tenant_id: Option<&'a TenantId>,
    pub target: &'a str,
    /// The request, carried out unchanged on approval.
    pub params: &'a P,
    /// What it will do, in words, for the approver.
    pub summary: String,
    /// The facts of the summary, for wording it in another language.
    pub details: &'a [(&'a str, String)],
}

/// Who carries out an action and under whose approval, for the rows it writes.
pub(crate) struct Authority<'a> {
    pub operator: &'a OperatorPrincipal,
    pub caller: &'a Caller,
    /// The approved request it carries out; none when asked for directly.
    pub approval: Option<&'a ApprovalRecord>,
}

impl Authority<'_> {
    /// The operator the action is credited to: the one who asked, and the approver.
    pub fn credited(&self) -> String {
        match self.approval {
            Some(a) => format!("{} (approved by {})", a.requested_by, self.operator.name()),
            None => self.operator.name().to_owned(),
        }
    }

    /// What an event's result adds when the action was approved.
    pub fn result_note(&self) -> String {
        match self.approval {
            Some(a) => format!(
                "; requested by {} and approved by {} (approval {})",
                a.requested_by,
                self.operator.name(),
                a.id
            ),
            None => String::new(),
        }
    }
}

/// In a destructive operation's transaction, before it changes anything: when the rule
/// holds and the action was asked for directly, files the request (or answers the same
/// one already waiting) and records it; the operation then commits and answers it
/// instead of acting.
pub(crate) async fn hold<P: Serialize>(
    svc: &Service,
    tx: &mut Tx,
    now: i64,
    authority: &Authority<'_>,
    held: Held<'_, P>,
) -> ServiceResult<Option<ApprovalRecord>> {
    if authority.approval.is_some() || operators::enabled_admins(&mut *tx).await? < 2 {
        return Ok(None);
    }
    let params = serde_json::to_string(held.params)
        .map_err(|e| ServiceError::invalid(format!("the request cannot be kept for approval: {e}")))?;
    if let Some(waiting) = approvals::pending_for(&mut *tx, held.action, held.target, &params, now).await? {
        return Ok(Some(waiting));
    }
    let operator = authority.operator;
    let details: serde_json::Map<String, serde_json::Value> = held
        .details
        .iter()
        .map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(value.as_str())))
        .collect();
    let details = serde_json::Value::Object(details).to_string();
    let id = approvals::insert(
        tx,
        &NewApproval {
            action: held.action,
            tenant_id: held.tenant_id,
            target: held.target,
            params: &params,
            summary: &held.summary,
            details: &details,
            requested_by: operator.name(),
            requested_by_account: operator.account(),
            expires_ms: now + APPROVAL_TTL_MS,
        },
        now,
    )
    .await?;
    let result = format!(
        "waiting for a second operator-admin until {} (approval {id}): {}",
        rfc3339(now + APPROVAL_TTL_MS),
        held.summary
    );
    record(
        tx,
        &operator.actor(authority.caller),
        now,
        held.tenant_id,
        Action::ApprovalRequest,
        held.target,
        &result,
    )
    .await?;
    let filed = approvals::get(&mut *tx, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found("the approval request vanished"))?;
    mail_approvers(svc, tx, &filed, now).await?;
    tracing::info!(approval = %id, action = %held.action, operator = operator.name(), "approval requested");
    Ok(Some(filed))
}

/// Tells the other operator-admins with a mail address that a request waits for one of
/// them, so that it does not expire unseen.
async fn mail_approvers(svc: &Service, tx: &mut Tx, filed: &ApprovalRecord, now: i64) -> ServiceResult<()> {
    if !svc.settings.mail_enabled {
        return Ok(());
    }
    for mailbox in operators::mailboxes(&mut *tx, Some(ProviderRole::OperatorAdmin)).await? {
        if filed.requested_by_account.as_ref() == Some(&mailbox.id) {
            continue;
        }
        let mail = NewMail {
            recipient: mailbox.email,
            language: mailbox.language,
            content: MailContent::OperatorApproval {
                login: mailbox.login,
                requested_by: filed.requested_by.clone(),
                action: filed.action.as_str().to_owned(),
                details: filed.details.clone(),
                expires_ms: filed.expires_ms,
                link: format!("{}/approvals", svc.console_url),
            },
            give_up_ms: filed.expires_ms,
        };
        outbox::queue_to_operator(&mut *tx, &mail, now).await?;
    }
    Ok(())
}

/// Writes an approval event in the operator work log, and in the tenant's log when the
/// request concerns one.
async fn record(
    tx: &mut Tx,
    actor: &crate::audit::Actor,
    now: i64,
    tenant_id: Option<&TenantId>,
    action: Action,
    target: &str,
    result: &str,
) -> ServiceResult<()> {
    match tenant_id {
        Some(tenant) => record_both(tx, actor, now, &service_scope(tenant), action, target, result).await,
        None => crate::ops::operator_accounts::log_in(tx, actor, now, action, target, result).await,
    }
}

/// How many operator-admin accounts are enabled: the rule holds from two.
pub async fn operator_admins(svc: &Service) -> ServiceResult<u64> {
    Ok(operators::enabled_admins(&svc.db).await?)
}

/// Every waiting request, and those decided or expired in the last 30 days; newest first.
pub async fn list(svc: &Service, _operator: &OperatorPrincipal) -> ServiceResult<Vec<ApprovalRecord>> {
    Ok(approvals::list(&svc.db, svc.now_ms() - RECENT_MS).await?)
}

/// One request.
pub async fn get(svc: &Service, _operator: &OperatorPrincipal, id: &str) -> ServiceResult<ApprovalRecord> {
    let id = parse_id(id)?;
    approvals::get(&svc.db, &id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no approval request {id}")))
}

/// Waiting requests about one tenant, for its page.
pub async fn pending_for_tenant(
    svc: &Service,
    operator: &OperatorPrincipal,
    tenant_id: &TenantId,
) -> ServiceResult<Vec<ApprovalRecord>> {
    let now = svc.now_ms();
    Ok(list(svc, operator)
        .await?
        .into_iter()
        .filter(|a| a.tenant_id.as_ref() == Some(tenant_id) && a.status_at(now) == ApprovalStatus::Pending)
        .collect())
}

fn parse_id(id: &str) -> ServiceResult<ApprovalId> {
    ApprovalId::parse(id).ok_or_else(|| ServiceError::not_found(format!("no approval request {id:?}")))
}

/// Refuses anyone but an operator-admin's own account: the rule is about two people,
/// and an accountless token (the bootstrap token) is nobody in particular.
fn approver_account(operator: &OperatorPrincipal) -> ServiceResult<&OperatorId> {
    if operator.role() != ProviderRole::OperatorAdmin {
        return Err(ServiceError::forbidden(
            "only an operator-admin approves or rejects a request of the two-person rule",
        ));
    }
    operator.account().ok_or_else(|| {
        ServiceError::forbidden(
            "approvals are given by a person: sign in to the console as an operator-admin, or use a token issued to your account",
        )
    })
}

/// Checks that the request can still be decided, and decides it with its event.
async fn decide(
    svc: &Service,
    request: &ApprovalRecord,
    status: ApprovalStatus,
    by: &OperatorPrincipal,
    caller: &Caller,
) -> ServiceResult<()> {
    let now = svc.now_ms();
    match request.status_at(now) {
        ApprovalStatus::Pending => {}
        ApprovalStatus::Expired => {
            return Err(ServiceError::conflict(format!(
                "this request expired at {} without a decision; ask again if it is still needed",
                rfc3339(request.expires_ms)
            )));
        }
        decided => {
            return Err(ServiceError::conflict(format!(
                "this request was {decided} already by {}",
                request.decided_by.as_deref().unwrap_or("another operator-admin")
            )));
        }
    }
    let mut tx = svc.db.begin().await?;
    if !approvals::decide(&mut tx, &request.id, status, by.name(), now).await? {
        return Err(ServiceError::conflict(
            "another operator-admin decided this request a moment ago; reload to see how",
        ));
    }
    let action = match status {
        ApprovalStatus::Approved => Action::ApprovalApprove,
        _ => Action::ApprovalReject,
    };
    let result = format!(
        "{status} the request of {}: {}",
        request.requested_by, request.summary
    );
    record(
        &mut tx,
        &by.actor(caller),
        now,
        request.tenant_id.as_ref(),
        action,
        &request.target,
        &result,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Approves a request of another operator and carries it out. If carrying it out fails
/// (the tenant was purged meanwhile, say), the request stays approved with the failure as
/// its outcome, and the error is the answer.
pub async fn approve(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
) -> ServiceResult<ApprovalRecord> {
    let request = get(svc, operator, id).await?;
    let account = approver_account(operator)?;
    if request.requested_by_account.as_ref() == Some(account) {
        return Err(ServiceError::forbidden(
            "you asked for this yourself: a second operator-admin must approve it (you may reject it to withdraw it)",
        ));
    }
    decide(svc, &request, ApprovalStatus::Approved, operator, caller).await?;
    tracing::info!(approval = %request.id, action = %request.action, operator = operator.name(), requested_by = %request.requested_by, "approval given");

    let authority = Authority {
        operator,
        caller,
        approval: Some(&request),
    };
    let outcome = carry_out(svc, &authority, &request).await;
    let text = match &outcome {
        Ok(done) => format!("done: {done}"),
        Err(err) => format!("failed: {err}"),
    };
    approvals::set_outcome(&svc.db, &request.id, &text).await?;
    outcome?;
    get(svc, operator, id).await
}

/// Rejects a waiting request; the operator who asked may reject (withdraw) their own.
pub async fn reject(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    id: &str,
) -> ServiceResult<ApprovalRecord> {
    let request = get(svc, operator, id).await?;
    approver_account(operator)?;
    decide(svc, &request, ApprovalStatus::Rejected, operator, caller).await?;
    get(svc, operator, id).await
}

fn params<P: DeserializeOwned>(request: &ApprovalRecord) -> ServiceResult<P> {
    serde_json::from_str(&request.params).map_err(|e| {
        ServiceError::invalid(format!(
            "approval {} holds a request this version cannot read: {e}",
            request.id
        ))
    })
}

/// The contract the request concerns, for its approver.
fn contract_of(operator: &OperatorPrincipal, request: &ApprovalRecord) -> ServiceResult<ContractScope> {
    let tenant = request
        .tenant_id
        .clone()
        .ok_or_else(|| ServiceError::invalid(format!("approval {} names no tenant", request.id)))?;
    Ok(ContractScope::new(operator, tenant))
}

/// Carries out an approved request; answers what it did, in words.
async fn carry_out(
    svc: &Service,
    authority: &Authority<'_>,
    request: &ApprovalRecord,
) -> ServiceResult<String> {
    use crate::ops::{operator_accounts, tenants, terminations};
    let gated = match request.action {
        ApprovalAction::TerminateTenant => {
            let scope = contract_of(authority.operator, request)?;
            let terminate: TerminateRequest = params(request)?;
            terminations::terminate_as(svc, authority, &scope, &terminate)
                .await?
                .map(|(tenant, termination)| {
                    format!(
                        "tenant {} terminated, purge due {}",
                        tenant.service_code,
                        rfc3339(termination.purge_due_ms)
                    )
                })
        }
        ApprovalAction::PurgeNow => {
            let scope = contract_of(authority.operator, request)?;
            terminations::purge_now_as(svc, authority, &scope)
                .await?
                .map(|tenant| format!("purge of tenant {} queued to run now", tenant.service_code))
        }
        ApprovalAction::LowerImmutability => {
            let scope = contract_of(authority.operator, request)?;
            let update: UpdateTenantRequest = params(request)?;
            tenants::update_as(svc, authority, &scope, update)
                .await?
                .map(|tenant| {
                    format!(
                        "contract of tenant {} changed: immutability {} days",
                        tenant.service_code, tenant.immutable_days
                    )
                })
        }
        ApprovalAction::DeleteOperator => {
            let id: OperatorId = params(request)?;
            operator_accounts::delete_as(svc, authority, id.as_str())
                .await?
                .map(|login| format!("operator account {login} deleted"))
        }
    };
    match gated {
        Gated::Done(text) => Ok(text),
        // Not reached: an approved request is carried out, never held again.
        Gated::AwaitingApproval(again) => Err(ServiceError::conflict(format!(
            "the request was held again as approval {}",
            again.id
        ))),
    }
}
