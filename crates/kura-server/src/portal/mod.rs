//! The customer portal: server-rendered pages on the customer listener for a tenant's
//! users — sign-in, dashboard, machines, account, contract. Every page works without
//! JavaScript; every form carries the CSRF token and answers with a redirect; every
//! action is the same `kura_service` operation the JSON API calls, so the portal can do
//! nothing the API cannot.
//!
//! A page's route declares its permission in [`PORTAL_ROUTES`] like an API route; the
//! [`Viewer`] extractor turns a missing or ended session into a redirect to `/login` and
//! a missing permission into a `403` page, and a page a role may not use is not in its
//! navigation.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use kura_service::authz::{Permission, UserPrincipal};
use kura_service::model::{Language, TenantRecord};
use kura_service::ops::tenants;
use kura_service::{ErrorKind, Refusal, ServiceError};

use crate::api::{Access, RouteTable};
use crate::app::AppState;
use crate::auth::{authenticate_user, required};
use crate::web::i18n::{Tr, from_accept_language};
use crate::web::{CSRF_COOKIE, ErrorPage, anonymous_language, cookie, see_other};

pub(crate) mod account;
mod alerts;
mod dashboard;
mod events;
mod help;
pub(crate) mod login;
mod machines;
mod notices;
mod plans;
mod security;
mod snapshots;
mod support;
mod users;

/// The portal's pages and forms.
pub(crate) const PORTAL_ROUTES: RouteTable = RouteTable {
    area: "portal",
    routes: &[
        (Method::GET, "/static/{name}", Access::Open, |m| {
            on(m, crate::web::assets::file)
        }),
        (Method::GET, "/login", Access::Open, |m| on(m, login::page)),
        (Method::POST, "/login", Access::Open, |m| on(m, login::submit)),
        (Method::POST, "/login/totp", Access::Open, |m| {
            on(m, login::submit_code)
        }),
        (Method::GET, "/forgot-password", Access::Open, |m| {
            on(m, login::forgot_page)
        }),
        (Method::POST, "/forgot-password", Access::Open, |m| {
            on(m, login::forgot_submit)
        }),
        (Method::GET, "/reset-password", Access::Open, |m| {
            on(m, login::reset_page)
        }),
        (Method::POST, "/reset-password", Access::Open, |m| {
            on(m, login::reset_submit)
        }),
        (Method::POST, "/language", Access::Open, |m| {
            on(m, login::language)
        }),
        (Method::GET, "/ca.pem", Access::Open, |m| on(m, machines::ca_pem)),
        (
            Method::POST,
            "/logout",
            Access::Role(Permission::ViewStatus),
            |m| on(m, login::logout),
        ),
        (Method::GET, "/", Access::Role(Permission::ViewStatus), |m| {
            on(m, dashboard::page)
        }),
        (
            Method::GET,
            "/machines",
            Access::Role(Permission::ViewStatus),
            |m| on(m, machines::page),
        ),
        (
            Method::POST,
            "/machines/add",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::add),
        ),
        (
            Method::POST,
            "/machines/{id}/rename",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::rename),
        ),
        (
            Method::POST,
            "/machines/{id}/revoke",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::revoke),
        ),
        (
            Method::GET,
            "/snapshots",
            Access::Role(Permission::ViewStatus),
            |m| on(m, snapshots::list),
        ),
        (
            Method::GET,
            "/alerts",
            Access::Role(Permission::ViewStatus),
            |m| on(m, alerts::page),
        ),
        (
            Method::GET,
            "/notices",
            Access::Role(Permission::ViewStatus),
            |m| on(m, notices::page),
        ),
        (
            Method::POST,
            "/notices/{id}/read",
            Access::Role(Permission::ViewStatus),
            |m| on(m, notices::mark_read),
        ),
        (
            Method::GET,
            "/support",
            Access::Role(Permission::ViewStatus),
            |m| on(m, support::page),
        ),
        (
            Method::POST,
            "/support",
            Access::Role(Permission::ViewStatus),
            |m| on(m, support::open),
        ),
        (
            Method::GET,
            "/support/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, support::request),
        ),
        (
            Method::POST,
            "/support/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, support::reply),
        ),
        (Method::GET, "/plans", Access::Role(Permission::ViewStatus), |m| {
            on(m, plans::page)
        }),
        (
            Method::POST,
            "/plans",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::create),
        ),
        (
            Method::GET,
            "/plans/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, plans::edit),
        ),
        (
            Method::POST,
            "/plans/{id}",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::change),
        ),
        (
            Method::POST,
            "/plans/{id}/delete",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::delete),
        ),
        (
            Method::GET,
            "/snapshots/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, snapshots::page),
        ),
        (
            Method::POST,
            "/snapshots/{id}",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::browse),
        ),
        (
            Method::POST,
            "/snapshots/{id}/restore",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::restore),
        ),
        (
            Method::GET,
            "/snapshots/{id}/download",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::download),
        ),
        (
            Method::POST,
            "/snapshots/{id}/download",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::download_encrypted),
        ),
        (
            Method::GET,
            "/account",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::page),
        ),
        (
            Method::POST,
            "/account/language",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::language),
        ),
        (
            Method::POST,
            "/account/alert-mail",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::alert_mail),
        ),
        (
            Method::POST,
            "/account/totp/enroll",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::totp_enroll),
        ),
        (
            Method::POST,
            "/account/totp/confirm",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::totp_confirm),
        ),
        (
            Method::POST,
            "/account/totp/disable",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::totp_disable),
        ),
        (
            Method::POST,
            "/account/password",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::change_password),
        ),
        (
            Method::POST,
            "/account/sessions/{id}/revoke",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::revoke_session),
        ),
        (
            Method::POST,
            "/account/tokens",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::create_token),
        ),
        (
            Method::POST,
            "/account/tokens/{id}/revoke",
            Access::Role(Permission::ViewStatus),
            |m| on(m, account::revoke_token),
        ),
        (
            Method::GET,
            "/users",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::page),
        ),
        (
            Method::POST,
            "/users",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::create),
        ),
        (
            Method::POST,
            "/users/{id}",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::change),
        ),
        (
            Method::GET,
            "/security",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, security::page),
        ),
        (
            Method::POST,
            "/security",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, security::change),
        ),
        (
            Method::GET,
            "/events",
            Access::Role(Permission::ReadEvents),
            |m| on(m, events::page),
        ),
        (
            Method::GET,
            "/contract",
            Access::Role(Permission::ViewStatus),
            |m| on(m, dashboard::contract),
        ),
        (Method::GET, "/help", Access::Role(Permission::ViewStatus), |m| {
            on(m, help::page)
        }),
    ],
};

/// The signed-in user of a portal page, with what every page's frame shows: the tenant,
/// the words in the user's language and the CSRF token for its forms.
pub struct Viewer {
    pub user: UserPrincipal,
    pub tenant: TenantRecord,
    pub tr: Tr,
    pub csrf: String,
    /// The path of the page, to mark it in the navigation.
    pub path: String,
    /// Whether the user has TOTP on.
    pub totp_enrolled: bool,
    /// The service's time when the page was asked for.
    pub now_ms: i64,
    /// What the form that led here did (shown once).
    pub notice: Option<String>,
}

/// The pages of the navigation and the permission each needs.
const NAVIGATION: &[(&str, &str, Permission)] = &[
    ("/", "nav-dashboard", Permission::ViewStatus),
    ("/machines", "nav-machines", Permission::ViewStatus),
    ("/snapshots", "nav-snapshots", Permission::ViewStatus),
    ("/plans", "nav-plans", Permission::ViewStatus),
    ("/alerts", "nav-alerts", Permission::ViewStatus),
    ("/notices", "nav-notices", Permission::ViewStatus),
    ("/users", "nav-users", Permission::ManageUsers),
    ("/security", "nav-security", Permission::ManageSecurity),
    ("/events", "nav-events", Permission::ReadEvents),
    ("/contract", "nav-contract", Permission::ViewStatus),
    ("/support", "nav-support", Permission::ViewStatus),
    ("/help", "nav-help", Permission::ViewStatus),
];

impl Viewer {
    /// The pages this user's role may use.
    pub fn nav(&self) -> Vec<crate::web::NavItem> {
        crate::web::navigation(NAVIGATION, &self.tr, &self.path, |p| self.user.role.allows(p))
    }

    /// Whether the user's role holds `permission` (to offer an action or not).
    pub fn may(&self, permission: Permission) -> bool {
        self.user.role.allows(permission)
    }

    /// Whether the tenant requires TOTP of this user, who has not enrolled yet (every page
    /// but the account sends them there).
    pub fn must_enrol(&self) -> bool {
        !self.totp_enrolled && self.tenant.totp_policy.requires(self.user.role)
    }

    /// The role's name in the page's language.
    pub fn role_name(&self) -> String {
        self.tr.t(&format!("role-{}", self.user.role.as_str()))
    }

    /// The page's error or notice, translated, for a refusal of a service operation.
    pub fn error_page(&self, err: &ServiceError, back: &'static str) -> Response {
        error_page(self.tr.clone(), err, back)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path = page_of(&parts.method, parts.uri.path());
        let refuse = |err: ServiceError| refusal(&parts.headers, &path, &err);
        let user = authenticate_user(parts, state).await.map_err(refuse)?;
        let permission = required(parts).map_err(|err| refuse(ServiceError::forbidden(err.message)))?;
        let tenant = tenants::current(&state.service, &user.scope)
            .await
            .map_err(refuse)?;
        let record = kura_service::ops::users::get(&state.service, &user.scope, user.user_id.as_str())
            .await
            .map_err(refuse)?;
        let language = record
            .language
            .or_else(|| accept_language(&parts.headers))
            .unwrap_or_else(|| Language::choose(None, tenant.language, &tenant.time_zone));
        let viewer = Viewer {
            totp_enrolled: record.totp_enrolled,
            now_ms: state.service.now_ms(),
            tr: Tr::new(language, &tenant.time_zone),
            csrf: cookie(&parts.headers, CSRF_COOKIE).unwrap_or_default(),
            notice: crate::web::notice(&parts.headers),
            user,
            tenant,
            path,
        };
        if let Err(err) = viewer.user.require(permission) {
            return Err(viewer.error_page(&err, "/"));
        }
        Ok(viewer)
    }
}

/// The page a request shows: its path for a `GET`; for a form, the page the form belongs
/// to (every form's action lies under its page: `/users/{id}` → `/users`), so that the
/// navigation and the language switch of the answer point at a page, not at a form.
pub(crate) fn page_of(method: &Method, path: &str) -> String {
    if *method == Method::GET {
        return path.to_owned();
    }
    let first = path.split('/').nth(1).unwrap_or_default();
    format!("/{first}")
}

pub(super) use crate::web::event_log::{day_start, nonempty, query_string};

fn accept_language(headers: &HeaderMap) -> Option<Language> {
    headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .and_then(from_accept_language)
}

/// What a browser gets when the session does not let it in: the sign-in page (coming
/// back here afterwards) when it is not signed in or the session ended, else a page that
/// says why.
fn refusal(headers: &HeaderMap, path: &str, err: &ServiceError) -> Response {
    if err.refusal == Some(Refusal::TotpEnrolmentRequired) {
        return see_other("/account#totp");
    }
    if err.kind == ErrorKind::Unauthenticated {
        let ended = if err.refusal == Some(Refusal::SessionEnded) {
            "&ended=1"
        } else {
            ""
        };
        let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
        return see_other(&format!("/login?next={next}{ended}"));
    }
    error_page(Tr::new(anonymous_language(headers), "Asia/Tokyo"), err, "/")
}

/// A page for a refused or failed operation, in the page's language where the refusal
/// is one the portal names, else with the service's own (English) message.
pub fn error_page(tr: Tr, err: &ServiceError, back: &'static str) -> Response {
    let (title, message) = describe(&tr, err);
    ErrorPage {
        status: crate::error::status_of(err.kind).as_u16(),
        title,
        message,
        back,
        tr,
    }
    .response()
}

/// Title and sentence of an error in the page's language.
pub fn describe(tr: &Tr, err: &ServiceError) -> (String, String) {
    let title = tr.t(match err.kind {
        ErrorKind::NotFound => "error-not-found",
        ErrorKind::Forbidden => "error-forbidden",
        ErrorKind::Unauthenticated => "error-unauthenticated",
        ErrorKind::Throttled => "error-throttled",
        ErrorKind::Conflict | ErrorKind::Invalid => "error-invalid",
        ErrorKind::Unavailable | ErrorKind::StorageFull => "error-unavailable",
        ErrorKind::Internal => "error-internal",
    });
    let message = match &err.refusal {
        Some(refusal) => refusal_text(tr, refusal),
        None => err.message.clone(),
    };
    (title, message)
}

/// A named refusal, in the page's language.
pub fn refusal_text(tr: &Tr, refusal: &Refusal) -> String {
    match refusal {
        Refusal::WrongCredentials => tr.t("refusal-wrong-credentials"),
        Refusal::WrongSecondFactor => tr.t("refusal-wrong-code"),
        Refusal::SignInExpired => tr.t("refusal-sign-in-expired"),
        Refusal::Throttled { until_ms } => tr.t1("refusal-throttled", "until", tr.time_long(until_ms)),
        Refusal::Locked { until_ms } => tr.t1("refusal-locked", "until", tr.time_long(until_ms)),
        Refusal::OutsideAdminNetworks { address } => {
            tr.t1("refusal-outside-admin-networks", "address", address)
        }
        Refusal::TenantSuspended => tr.t("refusal-tenant-suspended"),
        Refusal::TenantTerminated => tr.t("refusal-tenant-terminated"),
        Refusal::SessionEnded => tr.t("refusal-session-ended"),
        Refusal::FormExpired => tr.t("refusal-form-expired"),
        Refusal::TotpEnrolmentRequired => tr.t("refusal-totp-required"),
        Refusal::OutsideOperatorNetworks { address } => {
            tr.t1("refusal-outside-operator-networks", "address", address)
        }
        Refusal::OperatorSetupRequired => tr.t("refusal-operator-setup-required"),
    }
}

/// A `404` page for paths of the portal that do not exist.
pub fn not_found(headers: &HeaderMap) -> Response {
    let tr = Tr::new(anonymous_language(headers), "Asia/Tokyo");
    let mut response = ErrorPage {
        status: 404,
        title: tr.t("error-not-found"),
        message: tr.t("error-no-such-page"),
        back: "/",
        tr,
    }
    .response();
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.into_response()
}
/// The badge colour of a plan run's status (`templates/portal/runs.html`).
pub(crate) fn drill_class(status: &kura_service::model::DrillStatus) -> &'static str {
    use kura_service::model::DrillStatus;
    match *status {
        DrillStatus::Passed => "ok",
        DrillStatus::Failed => "bad",
        DrillStatus::Running | DrillStatus::Abandoned => "muted",
    }
}

pub(crate) fn run_class(status: &kura_service::model::RunStatus) -> &'static str {
    use kura_service::model::RunStatus;
    match *status {
        RunStatus::Succeeded => "ok",
        RunStatus::Partial => "warn",
        RunStatus::Failed | RunStatus::Missed => "bad",
        RunStatus::Running | RunStatus::Skipped => "muted",
    }
}
