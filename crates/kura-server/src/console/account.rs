//! The operator's own account: the first sign-in's setup (a password of one's own in
//! place of the one-time password, then TOTP) and `/account` (console sessions and API
//! tokens; a new token is shown once, on the page that answers its form).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::ProviderRole;
use kura_service::model::{OperatorRecord, OperatorSessionRecord, OperatorTokenRecord};
use kura_service::ops::operator_accounts as accounts;
use serde::Deserialize;

use super::Desk;
use crate::api::operators::parse_role;
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::{qr_svg, render, see_other_with_notice};

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    d: Desk,
    me: OperatorRecord,
    outcome: Option<Outcome>,
    /// A TOTP enrolment in progress: the secret and its QR code (SVG).
    enrolment: Option<(String, String)>,
}

async fn show_setup(
    state: &AppState,
    d: Desk,
    outcome: Option<Outcome>,
    enrolment: Option<(String, String)>,
) -> Response {
    let me = match accounts::me(&state.service, &d.operator).await {
        Ok(Some(me)) => me,
        Ok(None) => return crate::web::see_other("/"),
        Err(err) => return d.error_page(&err, "/"),
    };
    if me.password_changed && me.totp_enrolled {
        return see_other_with_notice("/", &d.tr.t("console-setup-done"));
    }
    let status = status_after(&outcome, StatusCode::OK);
    render(
        status,
        &SetupPage {
            d,
            me,
            outcome,
            enrolment,
        },
    )
}

/// `GET /setup`: what the first sign-in still needs.
pub(super) async fn setup_page(State(state): State<AppState>, d: Desk) -> Response {
    show_setup(&state, d, None, None).await
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /setup/password`: the operator's own password in place of the one-time one.
pub(super) async fn setup_password(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Form(form): Form<PasswordForm>,
) -> Response {
    if form.new_password != form.confirm_password {
        let outcome = Outcome::invalid(d.tr.t("password-mismatch"));
        return show_setup(&state, d, Some(outcome), None).await;
    }
    match accounts::change_password(
        &state.service,
        &d.operator,
        &caller,
        form.current_password,
        form.new_password,
    )
    .await
    {
        Ok(()) => see_other_with_notice("/setup", &d.tr.t("password-changed")),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show_setup(&state, d, Some(outcome), None).await
        }
    }
}

/// `POST /setup/totp`: a new secret, shown as a QR code and as text.
pub(super) async fn setup_totp(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
) -> Response {
    match accounts::enroll_totp(&state.service, &d.operator, &caller).await {
        Ok(enrolment) => {
            let shown = (enrolment.secret, qr_svg(&enrolment.otpauth_uri));
            show_setup(&state, d, None, Some(shown)).await
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show_setup(&state, d, Some(outcome), None).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    code: String,
    /// The secret being enrolled, only to draw its QR code again after a wrong code (the
    /// service confirms against the one it stored).
    #[serde(default)]
    secret: String,
}

/// `POST /setup/totp/confirm`: TOTP is on; the console opens.
pub(super) async fn setup_totp_confirm(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Form(form): Form<ConfirmForm>,
) -> Response {
    match accounts::confirm_totp(&state.service, &d.operator, &caller, &form.code).await {
        Ok(()) => see_other_with_notice("/setup", &d.tr.t("totp-enabled")),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            let uri =
                kura_service::totp::otpauth_uri(&form.secret, &accounts::otpauth_label(d.operator.name()));
            let shown = (form.secret.clone(), qr_svg(&uri));
            show_setup(&state, d, Some(outcome), Some(shown)).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    d: Desk,
    sessions: Vec<OperatorSessionRecord>,
    tokens: Vec<OperatorTokenRecord>,
    /// The secret of a token just issued.
    new_token: Option<String>,
    outcome: Option<Outcome>,
    /// The roles this operator may give a token: wire name and words.
    roles: Vec<(&'static str, String)>,
}

impl AccountPage {
    fn is_current(&self, session: &OperatorSessionRecord) -> bool {
        self.d.operator.credential() == &kura_service::authz::OperatorCredential::Session(session.id.clone())
    }
}

async fn show_account(
    state: &AppState,
    d: Desk,
    new_token: Option<String>,
    outcome: Option<Outcome>,
) -> Response {
    let listed = async {
        Ok::<_, kura_service::ServiceError>((
            accounts::sessions(&state.service, &d.operator).await?,
            accounts::tokens(&state.service, &d.operator).await?,
        ))
    };
    let (sessions, tokens) = match listed.await {
        Ok(listed) => listed,
        Err(err) => return d.error_page(&err, "/"),
    };
    let roles = ProviderRole::ALL
        .into_iter()
        .filter(|role| d.operator.role().covers(*role))
        .map(|role| (role.as_str(), d.role_label(&role)))
        .collect();
    let status = status_after(&outcome, StatusCode::OK);
    render(
        status,
        &AccountPage {
            d,
            sessions,
            tokens,
            new_token,
            outcome,
            roles,
        },
    )
}

/// `GET /account`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    show_account(&state, d, None, None).await
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    days: String,
}

/// `POST /account/tokens`: a new token, shown once.
pub(super) async fn issue_token(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Form(form): Form<TokenForm>,
) -> Response {
    let Ok(days) = form.days.trim().parse::<u32>() else {
        let outcome = Outcome::invalid(d.tr.t("console-token-days-invalid"));
        return show_account(&state, d, None, Some(outcome)).await;
    };
    let issued = match parse_role(&form.role) {
        Ok(role) => accounts::issue_token(&state.service, &d.operator, &caller, &form.name, role, days).await,
        Err(err) => Err(err),
    };
    match issued {
        Ok(issued) => {
            let outcome = Outcome::done(d.tr.t("console-token-issued"));
            show_account(&state, d, Some(issued.token), Some(outcome)).await
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show_account(&state, d, None, Some(outcome)).await
        }
    }
}

/// `POST /account/tokens/{id}/revoke`.
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
) -> Response {
    match accounts::revoke_token(&state.service, &d.operator, &caller, &id).await {
        Ok(()) => see_other_with_notice("/account", &d.tr.t("token-revoked")),
        Err(err) => d.error_page(&err, "/account"),
    }
}

/// `POST /account/sessions/{id}/revoke`.
pub(super) async fn end_session(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
) -> Response {
    match accounts::end_session(&state.service, &d.operator, &caller, Some(&id)).await {
        Ok(()) => see_other_with_notice("/account", &d.tr.t("session-revoked")),
        Err(err) => d.error_page(&err, "/account"),
    }
}
