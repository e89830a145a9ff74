//! `/tenants/{id}`: one tenant as an operator sees it — contract, users, machines,
//! support access (and, only while a tenant admin's grant is live, its snapshots: time,
//! machine, source, kind, size), the metered usage of the last month, requests waiting
//! for approval —
//! and what an operator-admin does to it: suspend, resume, terminate
//! (its purge queued after a grace period, the service code typed to confirm) and
//! withdraw a termination before the purge starts. The same operations as
//! `/api/v1/operator/tenants/{id}/…`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::model::{
    ApprovalRecord, DeletionSummary, MachineRecord, MeterRow, TenantRecord, TenantStatus, TenantUserRecord,
    TerminationRecord,
};
use kura_service::ops::approvals::{self, Gated};
use kura_service::ops::support::{self, SupportedSnapshot};
use kura_service::ops::terminations::{self, MAX_PURGE_AFTER_DAYS, TerminateRequest};
use kura_service::ops::{metering, tenants};
use serde::Deserialize;

use super::Desk;
use super::contract::ContractForm;
use super::tenants::{status_class, status_key};
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "console/tenant.html")]
struct TenantPage {
    d: Desk,
    tenant: TenantRecord,
    users: Vec<TenantUserRecord>,
    machines: Vec<MachineRecord>,
    termination: Option<TerminationRecord>,
    /// The deletion record of its purge, once purged.
    deletion: Option<DeletionSummary>,
    /// Requests about it waiting for a second operator-admin.
    waiting: Vec<ApprovalRecord>,
    /// Its metered days of the last month, newest first.
    usage: Vec<MeterRow>,
    /// Its snapshots, newest first, while support access is granted.
    snapshots: Option<Vec<SupportedSnapshot>>,
    outcome: Option<Outcome>,
    may_manage: bool,
    /// The termination form as sent (shown again after a refusal).
    form: TerminateForm,
    /// The contract form: the contract in force, or as sent when refused.
    contract: ContractForm,
    max_days: u32,
}

impl TenantPage {
    fn status_key(&self) -> &'static str {
        status_key(self.tenant.status)
    }

    fn status_class(&self) -> &'static str {
        status_class(self.tenant.status)
    }

    fn is_active(&self) -> bool {
        self.tenant.status == TenantStatus::Active
    }

    fn is_suspended(&self) -> bool {
        self.tenant.status == TenantStatus::Suspended
    }

    fn support_until(&self) -> Option<i64> {
        self.tenant
            .support_until_ms
            .filter(|until| *until > self.d.now_ms)
    }

    fn networks(&self) -> String {
        if self.tenant.agent_networks.is_empty() {
            return self.d.tr.t("console-networks-anywhere");
        }
        self.tenant
            .agent_networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn snapshot_time(&self, snapshot: &SupportedSnapshot) -> String {
        self.d.tr.time_long(&snapshot.time_ns.div_euclid(1_000_000))
    }

    fn snapshot_kind(&self, snapshot: &SupportedSnapshot) -> String {
        self.d.tr.t(&format!("kind-{}", snapshot.kind))
    }

    fn short_id<'a>(&self, snapshot: &'a SupportedSnapshot) -> &'a str {
        snapshot.id.get(..12).unwrap_or(&snapshot.id)
    }

    fn snapshot_size(&self, snapshot: &SupportedSnapshot) -> String {
        self.d.tr.bytes(&snapshot.bytes)
    }

    fn active_machines(&self) -> usize {
        self.machines.iter().filter(|m| m.revoked_ms.is_none()).count()
    }

    /// What the purge deleted, in words.
    fn deleted(&self) -> Option<String> {
        let counted = self.termination.as_ref()?.counted?;
        let tr = &self.d.tr;
        Some(format!(
            "{}, {}",
            tr.t2(
                "console-purge-deleted-figures",
                ("objects", &counted.objects),
                ("bytes", &tr.bytes(&counted.bytes)),
            ),
            tr.t1("console-purge-snapshots", "count", counted.snapshots)
        ))
    }

    fn action_label(&self, approval: &ApprovalRecord) -> String {
        super::approvals::action_label(&self.d, approval)
    }

    fn summary(&self, approval: &ApprovalRecord) -> String {
        super::approvals::summary(&self.d, approval)
    }

    fn user_role(&self, user: &TenantUserRecord) -> String {
        self.d.tr.t(&format!("role-{}", user.role.as_str()))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct TerminateForm {
    #[serde(default)]
    purge_after_days: String,
    /// The service code, typed again.
    #[serde(default)]
    confirm: String,
}

pub(super) async fn show(
    state: &AppState,
    d: Desk,
    id: &str,
    form: TerminateForm,
    contract: Option<ContractForm>,
    outcome: Option<Outcome>,
) -> Response {
    let found = async {
        let (scope, tenant) = tenants::contract(&state.service, &d.operator, id).await?;
        let (users, machines) = tenants::detail(&state.service, &scope).await?;
        let termination = terminations::termination(&state.service, &scope).await?;
        let deletion = match termination.as_ref().and_then(|t| t.purged_ms) {
            Some(_) => terminations::deletion_of(&state.service, &scope).await?,
            None => None,
        };
        let waiting = approvals::pending_for_tenant(&state.service, &d.operator, &tenant.id).await?;
        let (from, to) = metering::range(&state.service, None, None)?;
        let mut usage = metering::of_tenant(&state.service, &scope, &from, &to).await?;
        usage.reverse();
        // Only under a live grant; the service refuses otherwise, and every look is in the
        // tenant's event log.
        let snapshots = match support::active_until(&tenant, d.now_ms) {
            Some(_) => Some(support::snapshots(&state.service, &d.operator, id).await?.0),
            None => None,
        };
        Ok::<_, ServiceError>((
            tenant,
            users,
            machines,
            termination,
            deletion,
            waiting,
            usage,
            snapshots,
        ))
    };
    let (tenant, users, machines, termination, deletion, waiting, usage, snapshots) = match found.await {
        Ok(found) => found,
        Err(err) => return d.error_page(&err, "/"),
    };
    let status = status_after(&outcome, StatusCode::OK);
    let may_manage = d.operator.role().allows(Permission::ManageTenants);
    let contract = contract.unwrap_or_else(|| ContractForm::of(&tenant));
    render(
        status,
        &TenantPage {
            d,
            tenant,
            users,
            machines,
            termination,
            deletion,
            waiting,
            usage,
            snapshots,
            outcome,
            may_manage,
            form,
            contract,
            max_days: MAX_PURGE_AFTER_DAYS,
        },
    )
}

pub(super) fn default_form() -> TerminateForm {
    TerminateForm {
        purge_after_days: MAX_PURGE_AFTER_DAYS.to_string(),
        confirm: String::new(),
    }
}

/// `GET /tenants/{id}`.
pub(super) async fn page(State(state): State<AppState>, d: Desk, Path(id): Path<String>) -> Response {
    show(&state, d, &id, default_form(), None, None).await
}

/// Where a gated change leads: the tenant's page, saying what was done or that it waits.
pub(super) fn after(d: &Desk, id: &str, answer: Gated<String>) -> Response {
    let text = match answer {
        Gated::Done(text) => text,
        Gated::AwaitingApproval(_) => d.tr.t("console-approval-held"),
    };
    see_other_with_notice(&format!("/tenants/{id}"), &text)
}

/// `POST /tenants/{id}/{suspend|resume|cancel-termination|purge-now}`.
pub(super) async fn change(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path((id, change)): Path<(String, String)>,
) -> Response {
    let changed = async {
        let (scope, _) = tenants::contract(&state.service, &d.operator, &id).await?;
        let done = |text: String| Gated::Done(text);
        match change.as_str() {
            "suspend" => tenants::set_status(&state.service, &scope, TenantStatus::Suspended)
                .await
                .map(|t| done(d.tr.t1("console-tenant-suspended", "code", &t.service_code))),
            "resume" => tenants::set_status(&state.service, &scope, TenantStatus::Active)
                .await
                .map(|t| done(d.tr.t1("console-tenant-resumed", "code", &t.service_code))),
            "cancel-termination" => terminations::cancel(&state.service, &d.operator, &caller, &scope)
                .await
                .map(|t| done(d.tr.t1("console-termination-withdrawn", "code", &t.service_code))),
            "purge-now" => terminations::purge_now(&state.service, &d.operator, &caller, &scope)
                .await
                .map(|answer| answer.map(|t| d.tr.t1("console-purge-now-queued", "code", &t.service_code))),
            _ => Err(ServiceError::not_found("no such change of a tenant")),
        }
    };
    match changed.await {
        Ok(answer) => after(&d, &id, answer),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, &id, default_form(), None, Some(outcome)).await
        }
    }
}

/// `POST /tenants/{id}/terminate`: the service code must be typed again.
pub(super) async fn terminate(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
    Form(form): Form<TerminateForm>,
) -> Response {
    let terminated = async {
        let (scope, tenant) = tenants::contract(&state.service, &d.operator, &id).await?;
        if form.confirm.trim() != tenant.service_code {
            return Err(ServiceError::invalid(d.tr.t1(
                "console-terminate-confirm-wrong",
                "code",
                &tenant.service_code,
            )));
        }
        let days = form.purge_after_days.trim().parse::<u32>().map_err(|_| {
            ServiceError::invalid(d.tr.t1("console-terminate-days-invalid", "max", MAX_PURGE_AFTER_DAYS))
        })?;
        let request = TerminateRequest {
            purge_after_days: Some(days),
        };
        terminations::terminate(&state.service, &d.operator, &caller, &scope, &request).await
    };
    match terminated.await {
        Ok(answer) => {
            let answer = answer.map(|(tenant, termination)| {
                d.tr.t2(
                    "console-tenant-terminated",
                    ("code", &tenant.service_code),
                    ("due", &d.tr.time_long(&termination.purge_due_ms)),
                )
            });
            after(&d, &id, answer)
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, &id, form, None, Some(outcome)).await
        }
    }
}
