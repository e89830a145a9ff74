//! `/approvals`: the two-person rule's requests — what waits for a second operator-admin
//! (approve and carry out, or reject; one's own request can only be withdrawn) and what
//! was decided or expired in the last 30 days. The same operations as
//! `/api/v1/operator/approvals`.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::model::{ApprovalRecord, ApprovalStatus};
use kura_service::ops::approvals;

use super::Desk;
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::i18n::Tr;
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    d: Desk,
    waiting: Vec<ApprovalRecord>,
    decided: Vec<ApprovalRecord>,
    /// How many operator-admins are enabled; the rule holds from two.
    admins: u64,
    in_force: bool,
    may_decide: bool,
    outcome: Option<Outcome>,
}

impl ApprovalsPage {
    fn action_label(&self, approval: &ApprovalRecord) -> String {
        action_label(&self.d, approval)
    }

    fn summary(&self, approval: &ApprovalRecord) -> String {
        summary(&self.d, approval)
    }

    fn status_label(&self, approval: &ApprovalRecord) -> String {
        self.d.tr.t(&format!(
            "approval-status-{}",
            approval.status_at(self.d.now_ms).as_str()
        ))
    }

    fn status_class(&self, approval: &ApprovalRecord) -> &'static str {
        match approval.status_at(self.d.now_ms) {
            ApprovalStatus::Pending => "warn",
            ApprovalStatus::Approved => "ok",
            ApprovalStatus::Rejected | ApprovalStatus::Expired => "muted",
        }
    }

    /// What carrying it out did: done, or the reason it failed.
    fn outcome(&self, approval: &ApprovalRecord) -> String {
        match approval.outcome.as_deref() {
            Some(text) => match text.strip_prefix("failed: ") {
                Some(reason) => self.d.tr.t1("console-approval-failed", "reason", reason),
                None => self.d.tr.t("console-approval-done"),
            },
            None => "–".to_owned(),
        }
    }

    fn is_mine(&self, approval: &ApprovalRecord) -> bool {
        approval.requested_by_account.is_some()
            && approval.requested_by_account.as_ref() == self.d.operator.account()
    }
}

/// A request's action in the page's language (`tenant.purge-now` →
/// `approval-action-tenant-purge-now`).
pub(super) fn action_label(d: &Desk, approval: &ApprovalRecord) -> String {
    worded_action(&d.tr, approval.action.as_str())
}

/// An action's name (`tenant.terminate`, …) in `tr`'s language.
pub(crate) fn worded_action(tr: &Tr, action: &str) -> String {
    tr.t(&format!("approval-action-{}", action_name(action)))
}

/// What a request will do, worded in the page's language from its details.
pub(super) fn summary(d: &Desk, approval: &ApprovalRecord) -> String {
    worded_summary(&d.tr, approval.action.as_str(), &approval.details)
}

/// What a request of `action` (`tenant.terminate`, …) will do, worded in `tr`'s language
/// from its details (for the page and for the mail that asks for a decision).
pub(crate) fn worded_summary(tr: &Tr, action: &str, details: &BTreeMap<String, String>) -> String {
    let values = details.iter().map(|(name, value)| {
        let value = match name.as_str() {
            "role" => tr.t(&format!("console-role-{value}")),
            _ => value.clone(),
        };
        (name.as_str(), value)
    });
    tr.tn(&format!("approval-summary-{}", action_name(action)), values)
}

fn action_name(action: &str) -> String {
    action.replace('.', "-")
}

async fn show(state: &AppState, d: Desk, outcome: Option<Outcome>) -> Response {
    let found = async {
        let all = approvals::list(&state.service, &d.operator).await?;
        let admins = approvals::operator_admins(&state.service).await?;
        Ok::<_, ServiceError>((all, admins))
    };
    let (all, admins) = match found.await {
        Ok(found) => found,
        Err(err) => return d.error_page(&err, "/"),
    };
    let (waiting, decided) = all
        .into_iter()
        .partition(|a| a.status_at(d.now_ms) == ApprovalStatus::Pending);
    let status = status_after(&outcome, StatusCode::OK);
    let may_decide = d.operator.role().allows(Permission::Approve);
    render(
        status,
        &ApprovalsPage {
            d,
            waiting,
            decided,
            admins,
            in_force: admins >= 2,
            may_decide,
            outcome,
        },
    )
}

/// `GET /approvals`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    show(&state, d, None).await
}

/// `POST /approvals/{id}/{approve|reject}`.
pub(super) async fn decide(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path((id, decision)): Path<(String, String)>,
) -> Response {
    let decided = match decision.as_str() {
        "approve" => approvals::approve(&state.service, &d.operator, &caller, &id)
            .await
            .map(|a| d.tr.t1("console-approval-approved", "summary", summary(&d, &a))),
        "reject" => approvals::reject(&state.service, &d.operator, &caller, &id)
            .await
            .map(|_| d.tr.t("console-approval-rejected")),
        _ => Err(ServiceError::not_found("no such decision on a request")),
    };
    match decided {
        Ok(done) => see_other_with_notice("/approvals", &done),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, Some(outcome)).await
        }
    }
}
