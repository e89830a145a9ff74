//! The operator console: server-rendered pages on the management listener for the
//! provider's staff — sign-in (password and a mandatory TOTP code, both set up at the
//! first sign-in), tenants, operator accounts and one's own account. It is made like the
//! portal (askama templates, the same styles, Japanese and English, CSRF on every form,
//! no page needs JavaScript) but lives only on the management listener, wears another
//! colour, and keeps its session in its own cookie. Every action is the same
//! `kura_service` operation the management API calls, and every page an operator opens
//! or form they send is in the operator work log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::on;
use kura_service::authz::{OperatorPrincipal, Permission, ProviderRole};
use kura_service::{ErrorKind, Refusal, ServiceError};

use crate::api::{Access, RouteTable};
use crate::app::AppState;
use crate::auth::{authenticate_operator, note_operator, required};
use crate::web::i18n::Tr;
use crate::web::{anonymous_language, cookie, see_other};

mod account;
pub(crate) mod approvals;
mod capacity;
mod contract;
mod deletions;
mod jobs;
mod login;
mod notices;
mod operators;
mod support;
mod tenant;
mod tenants;
mod work_log;

/// The cookie holding the CSRF token of a console session (apart from the portal's:
/// browsers keep cookies per host, not per port).
pub const CONSOLE_CSRF_COOKIE: &str = "kura_console_csrf";

/// The time zone the console shows times in: the service's home.
pub(crate) const CONSOLE_ZONE: &str = "Asia/Tokyo";

/// The console's pages and forms.
pub(crate) const CONSOLE_ROUTES: RouteTable = RouteTable {
    area: "console",
    routes: &[
        (Method::GET, "/static/{name}", Access::Open, |m| {
            on(m, crate::web::assets::file)
        }),
        (Method::GET, "/login", Access::Open, |m| on(m, login::page)),
        (Method::POST, "/login", Access::Open, |m| on(m, login::submit)),
        (Method::POST, "/login/totp", Access::Open, |m| {
            on(m, login::submit_code)
        }),
        (Method::POST, "/language", Access::Open, |m| {
            on(m, login::language)
        }),
        (
            Method::POST,
            "/logout",
            Access::Role(Permission::OwnAccount),
            |m| on(m, login::logout),
        ),
        (Method::GET, "/setup", Access::Role(Permission::OwnAccount), |m| {
            on(m, account::setup_page)
        }),
        (
            Method::POST,
            "/setup/password",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::setup_password),
        ),
        (
            Method::POST,
            "/setup/totp",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::setup_totp),
        ),
        (
            Method::POST,
            "/setup/totp/confirm",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::setup_totp_confirm),
        ),
        (Method::GET, "/", Access::Role(Permission::ReadTenants), |m| {
            on(m, tenants::page)
        }),
        (
            Method::GET,
            "/tenants/new",
            Access::Role(Permission::ManageTenants),
            |m| on(m, contract::new_page),
        ),
        (
            Method::POST,
            "/tenants",
            Access::Role(Permission::ManageTenants),
            |m| on(m, contract::create),
        ),
        (
            Method::POST,
            "/tenants/{tenant_id}/contract",
            Access::Role(Permission::ManageTenants),
            |m| on(m, contract::update),
        ),
        (
            Method::GET,
            "/tenants/{tenant_id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, tenant::page),
        ),
        (
            Method::POST,
            "/tenants/{tenant_id}/terminate",
            Access::Role(Permission::ManageTenants),
            |m| on(m, tenant::terminate),
        ),
        (
            Method::POST,
            "/tenants/{tenant_id}/{change}",
            Access::Role(Permission::ManageTenants),
            |m| on(m, tenant::change),
        ),
        (
            Method::GET,
            "/deletions",
            Access::Role(Permission::ReadTenants),
            |m| on(m, deletions::page),
        ),
        (
            Method::GET,
            "/deletions/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, deletions::download),
        ),
        (
            Method::GET,
            "/capacity",
            Access::Role(Permission::ReadTenants),
            |m| on(m, capacity::page),
        ),
        (Method::GET, "/jobs", Access::Role(Permission::ReadTenants), |m| {
            on(m, jobs::page)
        }),
        (Method::POST, "/jobs", Access::Role(Permission::RunJobs), |m| {
            on(m, jobs::run)
        }),
        (
            Method::GET,
            "/work-log",
            Access::Role(Permission::ReadWorkLog),
            |m| on(m, work_log::page),
        ),
        (
            Method::POST,
            "/work-log/verify",
            Access::Role(Permission::ReadWorkLog),
            |m| on(m, work_log::verify),
        ),
        (
            Method::GET,
            "/approvals",
            Access::Role(Permission::ReadTenants),
            |m| on(m, approvals::page),
        ),
        (
            Method::POST,
            "/approvals/{id}/{decision}",
            Access::Role(Permission::Approve),
            |m| on(m, approvals::decide),
        ),
        (
            Method::GET,
            "/operators",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::page),
        ),
        (
            Method::POST,
            "/operators",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::create),
        ),
        (
            Method::POST,
            "/operators/{id}/{change}",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::change),
        ),
        (
            Method::GET,
            "/notices",
            Access::Role(Permission::ReadTenants),
            |m| on(m, notices::page),
        ),
        (
            Method::POST,
            "/notices",
            Access::Role(Permission::Communicate),
            |m| on(m, notices::publish),
        ),
        (
            Method::GET,
            "/notices/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, notices::notice),
        ),
        (
            Method::POST,
            "/notices/{id}",
            Access::Role(Permission::Communicate),
            |m| on(m, notices::update),
        ),
        (
            Method::GET,
            "/support",
            Access::Role(Permission::ReadTenants),
            |m| on(m, support::page),
        ),
        (
            Method::GET,
            "/support/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, support::request),
        ),
        (
            Method::POST,
            "/support/{id}",
            Access::Role(Permission::Communicate),
            |m| on(m, support::reply),
        ),
        (
            Method::GET,
            "/account",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::page),
        ),
        (
            Method::POST,
            "/account/tokens",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::issue_token),
        ),
        (
            Method::POST,
            "/account/tokens/{id}/revoke",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::revoke_token),
        ),
        (
            Method::POST,
            "/account/sessions/{id}/revoke",
            Access::Role(Permission::OwnAccount),
            |m| on(m, account::end_session),
        ),
    ],
};

/// The signed-in operator of a console page, with what every page's frame shows.
pub struct Desk {
    pub operator: OperatorPrincipal,
    pub tr: Tr,
    pub csrf: String,
    /// The double-submit token of the language switch (set at sign-in).
    pub form_token: String,
    /// The path of the page, to mark it in the navigation.
    pub path: String,
    pub now_ms: i64,
    /// What the form that led here did (shown once).
    pub notice: Option<String>,
}

/// The console's pages and the permission each needs.
const NAVIGATION: &[(&str, &str, Permission)] = &[
    ("/", "console-nav-tenants", Permission::ReadTenants),
    ("/capacity", "console-nav-capacity", Permission::ReadTenants),
    ("/jobs", "console-nav-jobs", Permission::ReadTenants),
    ("/notices", "nav-notices", Permission::ReadTenants),
    ("/support", "nav-support", Permission::ReadTenants),
    ("/approvals", "console-nav-approvals", Permission::ReadTenants),
    ("/deletions", "console-nav-deletions", Permission::ReadTenants),
    ("/work-log", "console-nav-work-log", Permission::ReadWorkLog),
    ("/operators", "console-nav-operators", Permission::ManageOperators),
    ("/account", "console-nav-account", Permission::OwnAccount),
];

impl Desk {
    /// The pages this operator's role may use (none before the first sign-in's setup,
    /// which every page leads back to).
    pub fn nav(&self) -> Vec<crate::web::NavItem> {
        if !self.operator.is_set_up() {
            return Vec::new();
        }
        crate::web::navigation(NAVIGATION, &self.tr, &self.path, |p| {
            self.operator.role().allows(p)
        })
    }

    /// The signed-in operator's role in the page's language.
    pub fn role_name(&self) -> String {
        self.role_label(&self.operator.role())
    }

    /// A provider role's name in the page's language.
    pub fn role_label(&self, role: &ProviderRole) -> String {
        self.tr.t(&format!("console-role-{}", role.as_str()))
    }

    /// A notice's kind in the page's language.
    pub fn notice_kind(&self, kind: &kura_service::model::NoticeKind) -> String {
        self.tr.t(&format!("notice-kind-{}", kind.as_str()))
    }

    /// Whether `id` is the signed-in operator's own account.
    pub fn is_me(&self, id: &kura_service::ids::OperatorId) -> bool {
        self.operator.account() == Some(id)
    }

    /// A page for a refused or failed operation.
    pub fn error_page(&self, err: &ServiceError, back: &'static str) -> Response {
        crate::portal::error_page(self.tr.clone(), err, back)
    }
}

impl FromRequestParts<AppState> for Desk {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path = crate::portal::page_of(&parts.method, parts.uri.path());
        let tr = console_tr(&parts.headers);
        let refuse = |err: ServiceError| refusal(tr.clone(), &path, &err);
        let operator = authenticate_operator(parts, state).await.map_err(refuse)?;
        note_operator(parts, &operator);
        let permission = required(parts).map_err(|err| refuse(ServiceError::forbidden(err.message)))?;
        let desk = Desk {
            now_ms: state.service.now_ms(),
            csrf: cookie(&parts.headers, CONSOLE_CSRF_COOKIE).unwrap_or_default(),
            form_token: cookie(&parts.headers, crate::web::FORM_COOKIE).unwrap_or_default(),
            notice: crate::web::notice(&parts.headers),
            tr,
            operator,
            path,
        };
        if !desk.operator.is_set_up() && !desk.path.starts_with("/setup") && desk.path != "/logout" {
            return Err(see_other("/setup"));
        }
        if let Err(err) = desk.operator.require(permission) {
            return Err(desk.error_page(&err, "/account"));
        }
        Ok(desk)
    }
}

/// The operator signed in on a request to a page open to everyone, if any: the language
/// switch keeps their choice for their mail.
pub(super) struct SignedIn(pub Option<OperatorPrincipal>);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(SignedIn(authenticate_operator(parts, state).await.ok()))
    }
}

/// The console's words: the language switch's cookie, else the browser's, else Japanese.
fn console_tr(headers: &HeaderMap) -> Tr {
    Tr::new(anonymous_language(headers), CONSOLE_ZONE)
}

/// What a browser gets when the session does not let it in: the sign-in page (coming
/// back here afterwards), the first sign-in's setup, or a page that says why.
fn refusal(tr: Tr, path: &str, err: &ServiceError) -> Response {
    if err.refusal == Some(Refusal::OperatorSetupRequired) {
        return see_other("/setup");
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
    crate::portal::error_page(tr, err, "/")
}
