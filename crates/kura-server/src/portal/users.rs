//! `/users` (user admins): the tenant's users with their state, and the changes the API
//! offers — add (a generated password shown once, or a link by mail to set one), change
//! role, disable and enable, unlock, reset TOTP, send a password reset, delete — with the
//! role matrix beside them.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::{TENANT_PERMISSIONS, TenantRole};
use kura_service::ops::resets;
use kura_service::ops::users::{self, UserChange, UserState};
use serde::Deserialize;

use super::Viewer;
use super::account::{Outcome, status_after};
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

/// One row of the role matrix: a permission and, per role, whether it holds it.
pub struct MatrixRow {
    pub permission: String,
    pub allowed: Vec<bool>,
}

#[derive(Template)]
#[template(path = "portal/users.html")]
struct UsersPage {
    v: Viewer,
    users: Vec<UserState>,
    outcome: Option<Outcome>,
    /// A generated password, shown once, and whose it is.
    created: Option<(String, String)>,
    roles: Vec<(&'static str, String)>,
    matrix: Vec<MatrixRow>,
}

impl UsersPage {
    fn is_self(&self, state: &UserState) -> bool {
        state.user.id == self.v.user.user_id
    }

    fn locked(&self, state: &UserState) -> bool {
        state.locked_until_ms.is_some_and(|until| until > self.v.now_ms)
    }
}

async fn show(
    state: &AppState,
    v: Viewer,
    outcome: Option<Outcome>,
    created: Option<(String, String)>,
) -> Response {
    let users = match users::list(&state.service, &v.user.scope).await {
        Ok(users) => users,
        Err(err) => return v.error_page(&err, "/"),
    };
    let roles = TenantRole::ALL
        .into_iter()
        .map(|role| (role.as_str(), v.tr.t(&format!("role-{}", role.as_str()))))
        .collect();
    let matrix = TENANT_PERMISSIONS
        .iter()
        .map(|permission| MatrixRow {
            permission: v.tr.t(&format!("permission-{}", permission.as_str())),
            allowed: TenantRole::ALL
                .iter()
                .map(|role| role.allows(*permission))
                .collect(),
        })
        .collect();
    let otherwise = if created.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    render(
        status_after(&outcome, otherwise),
        &UsersPage {
            v,
            users,
            outcome,
            created,
            roles,
            matrix,
        },
    )
}

/// `GET /users`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    show(&state, v, None, None).await
}

#[derive(Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    email: String,
    /// `generate` (a password shown once) or `mail` (a link to set one).
    #[serde(default)]
    password: String,
}

/// `POST /users`.
pub(super) async fn create(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<CreateForm>,
) -> Response {
    let Some(role) = TenantRole::parse(&form.role) else {
        let outcome = Outcome::invalid(v.tr.t("users-choose-role"));
        return show(&state, v, Some(outcome), None).await;
    };
    let email = Some(form.email.trim().to_owned()).filter(|e| !e.is_empty());
    let by_mail = form.password == "mail";
    if by_mail && (email.is_none() || resets::require_mail(&state.service).is_err()) {
        let outcome = Outcome::invalid(v.tr.t("users-mail-needs-address"));
        return show(&state, v, Some(outcome), None).await;
    }
    let created = match users::create(&state.service, &v.user, &form.login, None, role, email).await {
        Ok(created) => created,
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            return show(&state, v, Some(outcome), None).await;
        }
    };
    if by_mail {
        return match resets::force(&state.service, &v.user, created.user.id.as_str()).await {
            Ok(address) => see_other_with_notice(
                "/users",
                &v.tr.t2(
                    "users-created-mailed",
                    ("login", &created.user.login),
                    ("address", &address),
                ),
            ),
            Err(err) => {
                let outcome = Outcome::failed(&v.tr, &err);
                show(&state, v, Some(outcome), None).await
            }
        };
    }
    let shown = created
        .password
        .map(|password| (created.user.login.clone(), password));
    show(&state, v, None, shown).await
}

#[derive(Deserialize)]
pub(super) struct ChangeForm {
    /// `role`, `disable`, `enable`, `unlock`, `reset-totp`, `send-reset` or `delete`.
    #[serde(default)]
    change: String,
    #[serde(default)]
    role: String,
}

/// `POST /users/{id}`: one change to one user, named by the button pressed.
pub(super) async fn change(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let service = &state.service;
    let mut change = UserChange {
        role: None,
        disabled: None,
        email: None,
        unlock: false,
        reset_totp: false,
    };
    match form.change.as_str() {
        "role" => change.role = TenantRole::parse(&form.role),
        "disable" | "enable" => change.disabled = Some(form.change == "disable"),
        "unlock" => change.unlock = true,
        "reset-totp" => change.reset_totp = true,
        _ => {}
    }
    let result = match form.change.as_str() {
        "role" if change.role.is_none() => {
            Err(kura_service::ServiceError::invalid(v.tr.t("users-choose-role")))
        }
        "role" | "disable" | "enable" | "unlock" | "reset-totp" => {
            users::update(service, &v.user, &id, change)
                .await
                .map(|_| "users-changed")
        }
        "send-reset" => resets::force(service, &v.user, &id)
            .await
            .map(|_| "users-reset-sent"),
        "delete" => users::delete(service, &v.user, &id)
            .await
            .map(|()| "users-deleted"),
        _ => Err(kura_service::ServiceError::invalid("unknown change")),
    };
    match result {
        Ok(key) => see_other_with_notice("/users", &v.tr.t(key)),
        Err(err) => {
            let outcome = Outcome::failed(&v.tr, &err);
            show(&state, v, Some(outcome), None).await
        }
    }
}
