//! Signing in and out, the language switch before sign-in, and password reissue by mail.
//! The forms shown before sign-in carry a double-submit token ([`FormToken`]) instead of
//! a session's CSRF token: a page of another site cannot sign a browser in to an account
//! of its choosing.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kura_service::authz::{self, SignInStep, SignedIn};
use kura_service::model::Language;
use kura_service::ops::{resets, users};
use kura_service::{ServiceError, duration_ms};
use serde::Deserialize;

use super::{Viewer, describe};
use crate::app::AppState;
use crate::auth::{CallerInfo, SESSION_COOKIE};
use crate::web::i18n::Tr;
use crate::web::{
    CSRF_COOKIE, FormToken, LANGUAGE_COOKIE, anonymous_language, local_path, render, see_other, set_cookie,
    with_session_cookies,
};

/// What the frame of a page before sign-in needs.
pub struct Anonymous {
    pub tr: Tr,
    pub form_token: String,
    /// Where the language switch returns to.
    pub here: String,
}

impl Anonymous {
    fn new(headers: &HeaderMap, token: &FormToken, here: &str) -> Anonymous {
        Anonymous {
            tr: Tr::new(anonymous_language(headers), "Asia/Tokyo"),
            form_token: token.value.clone(),
            here: here.to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    a: Anonymous,
    next: String,
    login: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/login_totp.html")]
struct CodePage {
    a: Anonymous,
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
    #[serde(default)]
    reset: Option<String>,
}

/// Where to go after signing in: `next` if it is a path of this site.
pub(crate) fn after_sign_in(next: &str) -> String {
    if local_path(next) && !next.starts_with("/login") {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// `GET /login`.
pub(super) async fn page(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    let token = FormToken::of(&headers);
    let a = Anonymous::new(&headers, &token, "/login");
    let notice = if query.ended.is_some() {
        Some(a.tr.t("refusal-session-ended"))
    } else if query.reset.is_some() {
        Some(a.tr.t("reset-done"))
    } else {
        None
    };
    let body = LoginPage {
        next: after_sign_in(&query.next),
        login: String::new(),
        error: None,
        notice,
        a,
    };
    token.attach(render(StatusCode::OK, &body))
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

/// The answer to a form whose double-submit token does not match: the form is shown
/// again (with a fresh token), nothing was done.
fn form_expired(headers: &HeaderMap, here: &str) -> Response {
    let token = FormToken::of(headers);
    let a = Anonymous::new(headers, &token, here);
    let body = LoginPage {
        next: "/".to_owned(),
        login: String::new(),
        error: Some(a.tr.t("refusal-form-expired")),
        notice: None,
        a,
    };
    token.attach(render(StatusCode::FORBIDDEN, &body))
}

/// `POST /login`: the password step.
pub(super) async fn submit(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers, "/login");
    }
    let next = after_sign_in(&form.next);
    match authz::sign_in_step(&state.service, &caller, &form.login, form.password).await {
        Ok(SignInStep::SignedIn(signed_in)) => signed_in_response(&state, &signed_in, &next),
        Ok(SignInStep::SecondFactor { pending }) => {
            let token = FormToken::of(&headers);
            let body = CodePage {
                a: Anonymous::new(&headers, &token, "/login"),
                next,
                pending,
                error: None,
            };
            token.attach(render(StatusCode::OK, &body))
        }
        Err(err) => {
            let token = FormToken::of(&headers);
            let a = Anonymous::new(&headers, &token, "/login");
            let body = LoginPage {
                error: Some(describe(&a.tr, &err).1),
                notice: None,
                next,
                login: form.login,
                a,
            };
            token.attach(render(crate::error::status_of(err.kind), &body))
        }
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
        return form_expired(&headers, "/login");
    }
    let next = after_sign_in(&form.next);
    match authz::second_factor(&state.service, &caller, &form.pending, &form.totp).await {
        Ok(signed_in) => signed_in_response(&state, &signed_in, &next),
        Err(err) => {
            let token = FormToken::of(&headers);
            let a = Anonymous::new(&headers, &token, "/login");
            let error = Some(describe(&a.tr, &err).1);
            let status = crate::error::status_of(err.kind);
            // A wrong code may be tried again with the same proof; anything else starts over.
            if err.refusal == Some(kura_service::Refusal::WrongSecondFactor) {
                token.attach(render(
                    status,
                    &CodePage {
                        a,
                        next,
                        pending: form.pending,
                        error,
                    },
                ))
            } else {
                token.attach(render(
                    status,
                    &LoginPage {
                        a,
                        next,
                        login: String::new(),
                        error,
                        notice: None,
                    },
                ))
            }
        }
    }
}

/// Sets the session and CSRF cookies and goes on.
fn signed_in_response(state: &AppState, signed_in: &SignedIn, next: &str) -> Response {
    let max_age = duration_ms(state.config.session_absolute_timeout) / 1000;
    with_session_cookies(
        next,
        (SESSION_COOKIE, &signed_in.session_cookie),
        (CSRF_COOKIE, &signed_in.csrf_token),
        max_age,
    )
}

/// `POST /logout`.
pub(super) async fn logout(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(err) = users::logout(&state.service, &viewer.user).await {
        return viewer.error_page(&err, "/");
    }
    with_session_cookies("/login", (SESSION_COOKIE, ""), (CSRF_COOKIE, ""), 0)
}

/// The language switch's form, before sign-in (the portal's) and in the console.
#[derive(Deserialize)]
pub(crate) struct LanguageForm {
    #[serde(default)]
    pub(crate) language: String,
    #[serde(default)]
    pub(crate) next: String,
    #[serde(default)]
    pub(crate) form_token: String,
}

/// `POST /language`: the language switch of the pages before sign-in (a cookie).
pub(super) async fn language(headers: HeaderMap, Form(form): Form<LanguageForm>) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers, "/login");
    }
    let language = Language::parse(&form.language).unwrap_or(Language::Ja);
    switched(language, &form.next, "/login")
}

/// Back to the page the switch was on (`otherwise` if `next` is not a path of this
/// site), with the language remembered in the browser for the pages before sign-in.
pub(crate) fn switched(language: Language, next: &str, otherwise: &str) -> Response {
    let mut response = see_other(if local_path(next) { next } else { otherwise });
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(LANGUAGE_COOKIE, language.as_str(), 365 * 86_400),
    );
    response
}

#[derive(Template)]
#[template(path = "portal/forgot.html")]
struct ForgotPage {
    a: Anonymous,
    error: Option<String>,
    sent: bool,
}

/// `GET /forgot-password`.
pub(super) async fn forgot_page(headers: HeaderMap) -> Response {
    let token = FormToken::of(&headers);
    let body = ForgotPage {
        a: Anonymous::new(&headers, &token, "/forgot-password"),
        error: None,
        sent: false,
    };
    token.attach(render(StatusCode::OK, &body))
}

#[derive(Deserialize)]
pub(super) struct ForgotForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    form_token: String,
}

/// `POST /forgot-password`: answers the same whether or not the login ID exists, and
/// looks it up after answering (as the API does).
pub(super) async fn forgot_submit(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers, "/forgot-password");
    }
    let token = FormToken::of(&headers);
    let a = Anonymous::new(&headers, &token, "/forgot-password");
    if resets::require_mail(&state.service).is_err() {
        let body = ForgotPage {
            error: Some(a.tr.t("forgot-no-mail")),
            sent: false,
            a,
        };
        return token.attach(render(StatusCode::SERVICE_UNAVAILABLE, &body));
    }
    tokio::spawn(async move {
        if let Err(err) = resets::forgot(&state.service, &caller, &form.login).await {
            tracing::warn!(error = %err.message, "password reset request failed");
        }
    });
    let body = ForgotPage {
        a,
        error: None,
        sent: true,
    };
    token.attach(render(StatusCode::OK, &body))
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
struct ResetPage {
    a: Anonymous,
    token: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ResetQuery {
    #[serde(default)]
    token: String,
}

/// `GET /reset-password?token=…`: the link of the mail.
pub(super) async fn reset_page(headers: HeaderMap, Query(query): Query<ResetQuery>) -> Response {
    let token = FormToken::of(&headers);
    let body = ResetPage {
        a: Anonymous::new(&headers, &token, "/reset-password"),
        token: query.token,
        error: None,
    };
    token.attach(render(StatusCode::OK, &body))
}

#[derive(Deserialize)]
pub(super) struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    form_token: String,
}

/// `POST /reset-password`: sets the new password, then the sign-in page says so.
pub(super) async fn reset_submit(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Response {
    if !FormToken::matches(&headers, &form.form_token) {
        return form_expired(&headers, "/reset-password");
    }
    let token = FormToken::of(&headers);
    let a = Anonymous::new(&headers, &token, "/reset-password");
    let outcome = if form.new_password != form.confirm_password {
        Err((StatusCode::UNPROCESSABLE_ENTITY, a.tr.t("password-mismatch")))
    } else {
        authz::redeem_reset(&state.service, &caller, &form.token, form.new_password)
            .await
            .map_err(|err: ServiceError| (crate::error::status_of(err.kind), describe(&a.tr, &err).1))
    };
    match outcome {
        Ok(_) => see_other("/login?reset=1"),
        Err((status, error)) => {
            let body = ResetPage {
                a,
                token: form.token,
                error: Some(error),
            };
            token.attach(render(status, &body))
        }
    }
}
