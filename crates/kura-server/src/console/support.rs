//! `/support`: every tenant's support requests (waiting ones first by default, security
//! events flagged); `/support/{id}`: a conversation, with a reply form that can also
//! close the request. The same operations as `/api/v1/operator/support-requests`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::Permission;
use kura_service::model::{
    RequestCategory, RequestFilter, RequestStatus, SupportRequestRecord, TenantRecord,
};
use kura_service::ops::requests::{self, RequestThread};
use kura_service::ops::tenants;
use serde::Deserialize;

use super::Desk;
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::{render, see_other_with_notice};

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ListQuery {
    /// `open`, `answered`, `closed` or empty for every one.
    #[serde(default)]
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "console/support.html")]
struct SupportPage {
    d: Desk,
    requests: Vec<SupportRequestRecord>,
    tenants: Vec<TenantRecord>,
    status: String,
}

impl SupportPage {
    fn tenant(&self, request: &SupportRequestRecord) -> String {
        self.tenants
            .iter()
            .find(|t| t.id == request.tenant_id)
            .map_or_else(
                || request.tenant_id.to_string(),
                |t| format!("{} ({})", t.service_code, t.name),
            )
    }

    fn flagged(&self, request: &SupportRequestRecord) -> bool {
        request.category == RequestCategory::SecurityEvent
    }
}

/// `GET /support?status=`.
pub(super) async fn page(State(state): State<AppState>, d: Desk, Query(query): Query<ListQuery>) -> Response {
    let status = query.status.unwrap_or_else(|| "open".to_owned());
    let filter = RequestFilter {
        status: RequestStatus::parse(&status),
        limit: 200,
        ..RequestFilter::default()
    };
    let listed = async {
        Ok::<_, kura_service::ServiceError>((
            requests::list(&state.service, &d.operator, filter).await?,
            tenants::list(&state.service, &d.operator).await?,
        ))
    };
    match listed.await {
        Ok((requests, tenants)) => render(
            StatusCode::OK,
            &SupportPage {
                d,
                requests,
                tenants,
                status,
            },
        ),
        Err(err) => d.error_page(&err, "/"),
    }
}

#[derive(Template)]
#[template(path = "console/support_request.html")]
struct RequestPage {
    d: Desk,
    thread: RequestThread,
    tenant: String,
    outcome: Option<Outcome>,
    may_reply: bool,
}

async fn show(state: &AppState, d: Desk, id: &str, outcome: Option<Outcome>) -> Response {
    let found = async {
        Ok::<_, kura_service::ServiceError>((
            requests::get(&state.service, &d.operator, id).await?,
            tenants::list(&state.service, &d.operator).await?,
        ))
    };
    let (thread, tenants) = match found.await {
        Ok(found) => found,
        Err(err) => return d.error_page(&err, "/support"),
    };
    let tenant = tenants
        .iter()
        .find(|t| t.id == thread.request.tenant_id)
        .map_or_else(
            || thread.request.tenant_id.to_string(),
            |t| format!("{} ({})", t.service_code, t.name),
        );
    let status = status_after(&outcome, StatusCode::OK);
    let may_reply = d.operator.role().allows(Permission::Communicate);
    render(
        status,
        &RequestPage {
            d,
            thread,
            tenant,
            outcome,
            may_reply,
        },
    )
}

/// `GET /support/{id}`.
pub(super) async fn request(State(state): State<AppState>, d: Desk, Path(id): Path<String>) -> Response {
    show(&state, d, &id, None).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ReplyForm {
    #[serde(default)]
    body: String,
    /// Present when the close button sent the form.
    #[serde(default)]
    close: Option<String>,
}

/// `POST /support/{id}`: a reply (mailed to the requester), closing the request, or both.
pub(super) async fn reply(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Response {
    let close = form.close.is_some();
    let body = Some(form.body.as_str()).filter(|b| !b.trim().is_empty());
    match requests::reply(&state.service, &d.operator, &caller, &id, body, close).await {
        Ok(thread) => {
            let done = if close {
                "support-closed"
            } else {
                "console-support-replied"
            };
            see_other_with_notice(&format!("/support/{}", thread.request.id), &d.tr.t(done))
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, &id, Some(outcome)).await
        }
    }
}
