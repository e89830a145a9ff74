//! `/account`: the signed-in user's own settings — language, alert mail, password,
//! sessions and API tokens (a new token is shown once, on the page that answers its form).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::TenantRole;
use kura_service::model::{ApiTokenRecord, Language, TenantUserRecord, UserSessionRecord};
use kura_service::ops::users;
use serde::Deserialize;

use super::{Viewer, describe};
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

/// A message at the top of the page after a form, and the status the page answers with.
pub struct Outcome {
    pub ok: bool,
    pub text: String,
    pub status: StatusCode,
}

impl Outcome {
    pub fn done(text: String) -> Outcome {
        Outcome {
            ok: true,
            text,
            status: StatusCode::OK,
        }
    }

    /// A refusal: its words, and the status of its kind (`404` for another tenant's id).
    pub fn failed(tr: &crate::web::i18n::Tr, err: &kura_service::ServiceError) -> Outcome {
        Outcome {
            ok: false,
            text: describe(tr, err).1,
            status: crate::error::status_of(err.kind),
        }
    }

    /// A form the page itself finds wrong before any operation.
    pub fn invalid(text: String) -> Outcome {
        Outcome {
            ok: false,
            text,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// The status of a page showing `outcome`, else `otherwise`.
pub fn status_after(outcome: &Option<Outcome>, otherwise: StatusCode) -> StatusCode {
    outcome.as_ref().map_or(otherwise, |outcome| outcome.status)
}

/// What a form of the account page has to show once.
#[derive(Default)]
struct Shown {
    /// The secret of a token just created.
    new_token: Option<String>,
    outcome: Option<Outcome>,
    /// A TOTP enrolment in progress: the secret and its QR code (SVG).
    enrolment: Option<(String, String)>,
    /// Recovery codes of an enrolment just confirmed.
    recovery_codes: Vec<String>,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    v: Viewer,
    sessions: Vec<UserSessionRecord>,
    tokens: Vec<ApiTokenRecord>,
    shown: Shown,
    roles: Vec<(&'static str, String)>,
    me: TenantUserRecord,
}

impl AccountPage {
    /// Whether alerts are mailed to users of this role at all.
    fn mailed_alerts(&self) -> bool {
        matches!(self.v.user.role, TenantRole::Admin | TenantRole::Operator)
    }

    fn current_session(&self, id: &str) -> bool {
        self.v.user.session_id().is_ok_and(|current| current == id)
    }

    fn role_label(&self, role: &TenantRole) -> String {
        self.v.tr.t(&format!("role-{}", role.as_str()))
    }
}

async fn show(state: &AppState, v: Viewer, shown: Shown) -> Response {
    let sessions = match users::sessions(&state.service, &v.user).await {
        Ok(sessions) => sessions,
        Err(err) => return v.error_page(&err, "/"),
    };
    let tokens = match users::tokens(&state.service, &v.user).await {
        Ok(tokens) => tokens,
        Err(err) => return v.error_page(&err, "/"),
    };
    let me = match users::get(&state.service, &v.user.scope, v.user.user_id.as_str()).await {
        Ok(me) => me,
        Err(err) => return v.error_page(&err, "/"),
    };
    let roles = TenantRole::ALL
        .into_iter()
        .filter(|role| v.user.role.covers(*role))
        .map(|role| (role.as_str(), v.tr.t(&format!("role-{}", role.as_str()))))
        .collect();
    render(
        status_after(&shown.outcome, StatusCode::OK),
        &AccountPage {
            v,
            sessions,
            tokens,
            shown,
            roles,
            me,
        },
    )
}

/// `GET /account`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    show(&state, v, Shown::default()).await
}

#[derive(Deserialize)]
pub(super) struct LanguageForm {
    #[serde(default)]
    language: String,
    #[serde(default)]
    next: String,
}

/// `POST /account/language`: the language switch of signed-in pages, kept with the user
/// (pages and mail) and in the browser (the sign-in page).
pub(super) async fn language(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<LanguageForm>,
) -> Response {
    let Some(language) = Language::parse(&form.language) else {
        return v.error_page(
            &kura_service::ServiceError::invalid("language must be ja or en"),
            "/account",
        );
    };
    if let Err(err) = users::set_language(&state.service, &v.user, Some(language.as_str())).await {
        return v.error_page(&err, "/account");
    }
    super::login::switched(language, &form.next, "/")
}

#[derive(Deserialize)]
pub(super) struct AlertMailForm {
    /// A checkbox: present (`on`) when ticked.
    #[serde(default)]
    alert_mail: Option<String>,
}

/// `POST /account/alert-mail`: the user turns alert mail to themselves on or off.
pub(super) async fn alert_mail(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<AlertMailForm>,
) -> Response {
    let on = form.alert_mail.is_some();
    match users::set_alert_mail(&state.service, &v.user, on).await {
        Ok(()) => {
            let notice = if on {
                "alert-mail-saved-on"
            } else {
                "alert-mail-saved-off"
            };
            see_other_with_notice("/account", &v.tr.t(notice))
        }
        Err(err) => v.error_page(&err, "/account"),
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /account/password`: ends the user's other sessions and revokes their API tokens.
pub(super) async fn change_password(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<PasswordForm>,
) -> Response {
    let outcome = if form.new_password != form.confirm_password {
        Outcome::invalid(v.tr.t("password-mismatch"))
    } else {
        match users::change_password(&state.service, &v.user, form.old_password, form.new_password).await {
            Ok(()) => return see_other_with_notice("/account", &v.tr.t("password-changed")),
            Err(err) => Outcome::failed(&v.tr, &err),
        }
    };
    show(&state, v, failed_or_done(outcome)).await
}

fn failed_or_done(outcome: Outcome) -> Shown {
    Shown {
        outcome: Some(outcome),
        ..Shown::default()
    }
}

/// `POST /account/sessions/{id}/revoke`.
pub(super) async fn revoke_session(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    match users::revoke_session(&state.service, &v.user, &id).await {
        Ok(()) => see_other_with_notice("/account", &v.tr.t("session-revoked")),
        Err(err) => v.error_page(&err, "/account"),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST /account/tokens`.
pub(super) async fn create_token(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<TokenForm>,
) -> Response {
    let role = TenantRole::parse(&form.role);
    match users::create_token(&state.service, &v.user, &form.name, role, form.expires_in_days).await {
        Ok(created) => {
            let shown = Shown {
                new_token: Some(created.token),
                ..Shown::default()
            };
            show(&state, v, shown).await
        }
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(&state, v, failed_or_done(outcome)).await
        }
    }
}

/// `POST /account/tokens/{id}/revoke`.
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    match users::revoke_token(&state.service, &v.user, &id).await {
        Ok(()) => see_other_with_notice("/account", &v.tr.t("token-revoked")),
        Err(err) => v.error_page(&err, "/account"),
    }
}

/// `POST /account/totp/enroll`: a new secret, shown as a QR code and as text.
pub(super) async fn totp_enroll(State(state): State<AppState>, v: Viewer) -> Response {
    match kura_service::ops::totp::enroll(&state.service, &v.user).await {
        Ok(enrolment) => {
            let shown = Shown {
                enrolment: Some((enrolment.secret, crate::web::qr_svg(&enrolment.otpauth_uri))),
                ..Shown::default()
            };
            show(&state, v, shown).await
        }
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(&state, v, failed_or_done(outcome)).await
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

/// `POST /account/totp/confirm`: TOTP is on; the recovery codes are shown once.
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<ConfirmForm>,
) -> Response {
    match kura_service::ops::totp::confirm(&state.service, &v.user, &form.code).await {
        Ok(codes) => {
            let shown = Shown {
                outcome: Some(Outcome::done(v.tr.t("totp-enabled"))),
                recovery_codes: codes,
                ..Shown::default()
            };
            // The frame must now show the user as enrolled.
            let v = Viewer {
                totp_enrolled: true,
                ..v
            };
            show(&state, v, shown).await
        }
        Err(err) => {
            let uri = kura_service::totp::otpauth_uri(&form.secret, &v.user.login);
            let shown = Shown {
                outcome: Some(Outcome::failed(&v.tr, &err)),
                enrolment: Some((form.secret.clone(), crate::web::qr_svg(&uri))),
                ..Shown::default()
            };
            show(&state, v, shown).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct DisableForm {
    #[serde(default)]
    password: String,
}

/// `POST /account/totp/disable`: needs the password again.
pub(super) async fn totp_disable(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<DisableForm>,
) -> Response {
    let proof = Some(kura_service::ops::totp::Proof::Password(form.password));
    match kura_service::ops::totp::disable(&state.service, &v.user, proof).await {
        Ok(()) => see_other_with_notice("/account", &v.tr.t("totp-disabled")),
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(&state, v, failed_or_done(outcome)).await
        }
    }
}
