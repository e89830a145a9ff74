//! `/account`: the signed-in user's own settings — language, password, sessions and API
//! tokens (a new token is shown once, on the page that answers its form).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::Response;
use kura_service::authz::TenantRole;
use kura_service::model::{ApiTokenRecord, Language, UserSessionRecord};
use kura_service::ops::users;
use serde::Deserialize;

use super::{Viewer, describe};
use crate::app::AppState;
use crate::web::{LANGUAGE_COOKIE, local_path, render, see_other, set_cookie};

/// A message at the top of the page after a form.
pub struct Outcome {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    v: Viewer,
    sessions: Vec<UserSessionRecord>,
    tokens: Vec<ApiTokenRecord>,
    /// The secret of a token just created, shown once.
    new_token: Option<String>,
    outcome: Option<Outcome>,
    roles: Vec<(&'static str, String)>,
}

impl AccountPage {
    fn current_session(&self, id: &str) -> bool {
        self.v.user.session_id().is_ok_and(|current| current == id)
    }

    fn role_label(&self, role: &TenantRole) -> String {
        self.v.tr.t(&format!("role-{}", role.as_str()))
    }
}

async fn show(state: &AppState, v: Viewer, new_token: Option<String>, outcome: Option<Outcome>) -> Response {
    let sessions = match users::sessions(&state.service, &v.user).await {
        Ok(sessions) => sessions,
        Err(err) => return v.error_page(&err, "/"),
    };
    let tokens = match users::tokens(&state.service, &v.user).await {
        Ok(tokens) => tokens,
        Err(err) => return v.error_page(&err, "/"),
    };
    let roles = TenantRole::ALL
        .into_iter()
        .filter(|role| v.user.role.covers(*role))
        .map(|role| (role.as_str(), v.tr.t(&format!("role-{}", role.as_str()))))
        .collect();
    let status = match &outcome {
        Some(Outcome { ok: false, .. }) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    render(
        status,
        &AccountPage {
            v,
            sessions,
            tokens,
            new_token,
            outcome,
            roles,
        },
    )
}

/// `GET /account`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    show(&state, v, None, None).await
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
    let next = if local_path(&form.next) {
        form.next.as_str()
    } else {
        "/"
    };
    let mut response = see_other(next);
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(LANGUAGE_COOKIE, language.as_str(), 365 * 86_400),
    );
    response
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
        Outcome {
            ok: false,
            text: v.tr.t("password-mismatch"),
        }
    } else {
        match users::change_password(&state.service, &v.user, form.old_password, form.new_password).await {
            Ok(()) => Outcome {
                ok: true,
                text: v.tr.t("password-changed"),
            },
            Err(err) => Outcome {
                ok: false,
                text: describe(&v.tr, &err).1,
            },
        }
    };
    show(&state, v, None, Some(outcome)).await
}

/// `POST /account/sessions/{id}/revoke`.
pub(super) async fn revoke_session(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    match users::revoke_session(&state.service, &v.user, &id).await {
        Ok(()) => see_other("/account#sessions"),
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
        Ok(created) => show(&state, v, Some(created.token), None).await,
        Err(err) => {
            let text = describe(&v.tr, &err).1;
            show(&state, v, None, Some(Outcome { ok: false, text })).await
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
        Ok(()) => see_other("/account#tokens"),
        Err(err) => v.error_page(&err, "/account"),
    }
}
