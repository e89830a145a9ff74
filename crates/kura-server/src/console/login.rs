//! The console's sign-in (password, then the TOTP code), sign-out and language switch.
//! The forms before sign-in carry the double-submit token of the portal's ([`FormToken`]).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kura_service::authz::{self, OperatorSignIn, OperatorSignedIn};
use kura_service::model::Language;
use kura_service::ops::operator_accounts;
use kura_service::{Refusal, duration_ms};
use serde::Deserialize;

use super::{CONSOLE_CSRF_COOKIE, Desk, SignedIn, console_tr};
use crate::app::AppState;
use crate::auth::{CONSOLE_SESSION_COOKIE, CallerInfo};
use crate::portal::describe;
use crate::portal::login::{LanguageForm, after_sign_in, switched};
use crate::web::i18n::Tr;
use crate::web::{FormToken, render, with_session_cookies};

/// What the frame of a console page before sign-in needs.
pub struct Gate {
    pub tr: Tr,
    pub form_token: String,
    /// Where the language switch returns to.
    pub here: String,
}

impl Gate {
    fn new(headers: &HeaderMap, token: &FormToken, here: &str) -> Gate {
        Gate {
            tr: console_tr(headers),
            form_token: token.value.clone(),
            here: here.to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    g: Gate,
    next: String,
    login: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "console/login_totp.html")]
struct CodePage {
    g: Gate,
    next: String,
    pending: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    ended: Option<String>,
}

/// The sign-in page with `error`, a fresh form token if needed.
fn login_page(headers: &HeaderMap, status: StatusCode, page: impl FnOnce(Gate) -> LoginPage) -> Response {
    let token = FormToken::of(headers);
    let body = page(Gate::new(headers, &token, "/login"));
    token.attach(render(status, &body))
}

/// `GET /login`.
pub(super) async fn page(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    login_page(&headers, StatusCode::OK, |g| LoginPage {
        next: after_sign_in(&query.next),
        login: String::new(),
        error: None,
        notice: query.ended.is_some().then(|| g.tr.t("refusal-session-ended")),
        g,
    })
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    form_token: String,
}

/// A form whose double-submit token does not match: shown again, nothing was done.
fn form_expired(headers: &HeaderMap) -> Response {
    login_page(headers, StatusCode::FORBIDDEN, |g| LoginPage {
        next: "/".to_owned(),
        login: String::new(),
        error: Some(g.tr.t("refusal-form-expired")),
        notice: None,
        g,
    })
}

/// `POST /login`: the password step.
pub(super) async fn submit(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers);
    }
    let next = after_sign_in(&form.next);
    match authz::operator_sign_in_step(&state.service, &caller, &form.login, form.password).await {
        Ok(OperatorSignIn::SignedIn(signed_in)) => signed_in_response(&state, &signed_in, &next),
        Ok(OperatorSignIn::SecondFactor { pending }) => {
            let token = FormToken::of(&headers);
            let body = CodePage {
                g: Gate::new(&headers, &token, "/login"),
                next,
                pending,
                error: None,
            };
            token.attach(render(StatusCode::OK, &body))
        }
        Err(err) => login_page(&headers, crate::error::status_of(err.kind), |g| LoginPage {
            error: Some(describe(&g.tr, &err).1),
            notice: None,
            next,
            login: form.login,
            g,
        }),
    }
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    pending: String,
    #[serde(default)]
    totp: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    form_token: String,
}

/// `POST /login/totp`: the second step, with the proof of the first.
pub(super) async fn submit_code(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers);
    }
    let next = after_sign_in(&form.next);
    match authz::operator_second_factor(&state.service, &caller, &form.pending, &form.totp).await {
        Ok(signed_in) => signed_in_response(&state, &signed_in, &next),
        // A wrong code may be tried again with the same proof; anything else starts over.
        Err(err) if err.refusal == Some(Refusal::WrongSecondFactor) => {
            let token = FormToken::of(&headers);
            let g = Gate::new(&headers, &token, "/login");
            let body = CodePage {
                error: Some(describe(&g.tr, &err).1),
                g,
                next,
                pending: form.pending,
            };
            token.attach(render(crate::error::status_of(err.kind), &body))
        }
        Err(err) => login_page(&headers, crate::error::status_of(err.kind), |g| LoginPage {
            error: Some(describe(&g.tr, &err).1),
            notice: None,
            next,
            login: String::new(),
            g,
        }),
    }
}

/// Sets the console's session and CSRF cookies and goes on (to the setup at the first
/// sign-in).
fn signed_in_response(state: &AppState, signed_in: &OperatorSignedIn, next: &str) -> Response {
    let max_age = duration_ms(state.config.session_absolute_timeout) / 1000;
    with_session_cookies(
        if signed_in.set_up { next } else { "/setup" },
        (CONSOLE_SESSION_COOKIE, &signed_in.session_cookie),
        (CONSOLE_CSRF_COOKIE, &signed_in.csrf_token),
        max_age,
    )
}

/// `POST /logout`.
pub(super) async fn logout(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    desk: Desk,
) -> Response {
    if let Err(err) = operator_accounts::end_session(&state.service, &desk.operator, &caller, None).await {
        return desk.error_page(&err, "/");
    }
    with_session_cookies(
        "/login",
        (CONSOLE_SESSION_COOKIE, ""),
        (CONSOLE_CSRF_COOKIE, ""),
        0,
    )
}

/// `POST /language`: the console's language switch (a cookie, before and after sign-in;
/// signed in, also the language of the operator's mail).
pub(super) async fn language(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    SignedIn(operator): SignedIn,
    headers: HeaderMap,
    Form(form): Form<LanguageForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers);
    }
    let language = Language::parse(&form.language).unwrap_or(Language::Ja);
    if let Some(operator) = operator
        && let Err(err) = operator_accounts::set_language(&state.service, &operator, &caller, language).await
    {
        // The page still switches; only the mail keeps its old language.
        tracing::warn!(error = %err, "the console's language was not kept as the operator's mail language");
    }
    switched(language, &form.next, "/")
}
