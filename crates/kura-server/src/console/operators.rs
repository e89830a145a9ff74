//! `/operators`: the operator accounts, for an operator-admin — create one (its one-time
//! password is shown once, on the page that answers the form), disable, enable, reset
//! TOTP.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::ProviderRole;
use kura_service::model::OperatorRecord;
use kura_service::ops::approvals::Gated;
use kura_service::ops::operator_accounts::{self as accounts, AccountChange, NewAccount};
use serde::Deserialize;

use super::Desk;
use crate::api::operators::{parse_mail_language, parse_role};
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "console/operators.html")]
struct OperatorsPage {
    d: Desk,
    operators: Vec<OperatorRecord>,
    /// The login and one-time password of an account just created.
    created: Option<(String, String)>,
    outcome: Option<Outcome>,
    roles: [ProviderRole; 2],
}

async fn show(
    state: &AppState,
    d: Desk,
    created: Option<(String, String)>,
    outcome: Option<Outcome>,
) -> Response {
    let operators = match accounts::list(&state.service).await {
        Ok(operators) => operators,
        Err(err) => return d.error_page(&err, "/"),
    };
    let status = status_after(&outcome, StatusCode::OK);
    render(
        status,
        &OperatorsPage {
            d,
            operators,
            created,
            outcome,
            roles: ProviderRole::ALL,
        },
    )
}

/// `GET /operators`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    show(&state, d, None, None).await
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    language: String,
}

/// `POST /operators`: a new account; its one-time password is shown once.
pub(super) async fn create(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Form(form): Form<CreateForm>,
) -> Response {
    let account = parse_role(&form.role).and_then(|role| {
        Ok(NewAccount {
            login: &form.login,
            role,
            email: Some(&form.email),
            language: parse_mail_language(Some(&form.language))?,
        })
    });
    let created = match account {
        Ok(account) => accounts::create(&state.service, &d.operator, &caller, account).await,
        Err(err) => Err(err),
    };
    match created {
        Ok(created) => {
            let outcome =
                Outcome::done(d.tr.t1("console-operator-created", "login", &created.operator.login));
            show(
                &state,
                d,
                Some((created.operator.login, created.password)),
                Some(outcome),
            )
            .await
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, None, Some(outcome)).await
        }
    }
}

/// `POST /operators/{id}/{disable|enable|reset-totp|delete}`.
pub(super) async fn change(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path((id, change)): Path<(String, String)>,
) -> Response {
    if change == "delete" {
        let text = match accounts::delete(&state.service, &d.operator, &caller, &id).await {
            Ok(Gated::Done(login)) => d.tr.t1("console-operator-deleted", "login", &login),
            Ok(Gated::AwaitingApproval(_)) => d.tr.t("console-approval-held"),
            Err(err) => {
                let outcome = Outcome::failed(&d.tr, &err);
                return show(&state, d, None, Some(outcome)).await;
            }
        };
        return see_other_with_notice("/operators", &text);
    }
    let (change, done) = match change.as_str() {
        "disable" => (AccountChange::Disable, "console-operator-disabled"),
        "enable" => (AccountChange::Enable, "console-operator-enabled"),
        "reset-totp" => (AccountChange::ResetTotp, "console-operator-totp-reset"),
        _ => {
            return d.error_page(
                &ServiceError::not_found("no such change of an operator account"),
                "/operators",
            );
        }
    };
    match accounts::change(&state.service, &d.operator, &caller, &id, change).await {
        Ok(account) => see_other_with_notice("/operators", &d.tr.t1(done, "login", &account.login)),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, None, Some(outcome)).await
        }
    }
}
