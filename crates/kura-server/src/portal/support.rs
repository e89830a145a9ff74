//! `/support`: the user's support requests (every one of the tenant's for user admins)
//! and the form to open one; `/support/{id}`: a request's conversation, with a reply form
//! and a button to close it. The same operations as `/api/v1/support-requests`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::model::{RequestCategory, RequestFilter, SupportRequestRecord};
use kura_service::ops::requests::{self, RequestThread};
use serde::Deserialize;

use super::Viewer;
use super::account::{Outcome, status_after};
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "portal/support.html")]
struct SupportPage {
    v: Viewer,
    requests: Vec<SupportRequestRecord>,
    form: OpenForm,
    outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct OpenForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

async fn show(state: &AppState, v: Viewer, form: OpenForm, outcome: Option<Outcome>) -> Response {
    let filter = RequestFilter {
        limit: 100,
        ..RequestFilter::default()
    };
    match requests::for_user(&state.service, &v.user, filter).await {
        Ok(requests) => {
            let status = status_after(&outcome, StatusCode::OK);
            render(
                status,
                &SupportPage {
                    v,
                    requests,
                    form,
                    outcome,
                },
            )
        }
        Err(err) => v.error_page(&err, "/"),
    }
}

/// `GET /support`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    let form = OpenForm {
        category: "question".to_owned(),
        ..OpenForm::default()
    };
    show(&state, v, form, None).await
}

/// `POST /support`: opens a request.
pub(super) async fn open(State(state): State<AppState>, v: Viewer, Form(form): Form<OpenForm>) -> Response {
    let opened = match RequestCategory::parse(&form.category) {
        Some(category) => requests::open(&state.service, &v.user, category, &form.subject, &form.body).await,
        None => Err(kura_service::ServiceError::invalid(
            "category: choose a question, an incident or a security event",
        )),
    };
    match opened {
        Ok(thread) => see_other_with_notice(
            &format!("/support/{}", thread.request.id),
            &v.tr.t("support-sent"),
        ),
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(&state, v, form, Some(outcome)).await
        }
    }
}

#[derive(Template)]
#[template(path = "portal/support_request.html")]
struct RequestPage {
    v: Viewer,
    thread: RequestThread,
    outcome: Option<Outcome>,
}

/// `GET /support/{id}`.
pub(super) async fn request(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    match requests::get_for_user(&state.service, &v.user, &id).await {
        Ok(thread) => render(
            StatusCode::OK,
            &RequestPage {
                v,
                thread,
                outcome: None,
            },
        ),
        Err(err) => v.error_page(&err, "/support"),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ReplyForm {
    #[serde(default)]
    body: String,
    /// Present when the close button sent the form.
    #[serde(default)]
    close: Option<String>,
}

/// `POST /support/{id}`: a reply, or closing the request.
pub(super) async fn reply(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Response {
    let close = form.close.is_some();
    let body = Some(form.body.as_str()).filter(|b| !b.trim().is_empty());
    match requests::reply_by_user(&state.service, &v.user, &id, body, close).await {
        Ok(thread) => {
            let done = if close {
                "support-closed"
            } else {
                "support-replied"
            };
            see_other_with_notice(&format!("/support/{}", thread.request.id), &v.tr.t(done))
        }
        Err(err) => match requests::get_for_user(&state.service, &v.user, &id).await {
            Ok(thread) => {
                let outcome = Some(Outcome::failed(&v.tr, &err));
                let status = status_after(&outcome, StatusCode::OK);
                render(status, &RequestPage { v, thread, outcome })
            }
            Err(err) => v.error_page(&err, "/support"),
        },
    }
}
