//! The HTTP API: which routes exist on which listener, and the JSON conventions they
//! share (request bodies through [`ApiJson`], errors as `{"error": "..."}`).
//!
//! Customer listener: `/api/v1/agents/register`, `/api/v1/agent/...`, `/api/v1/vault/...`
//! (agents) and the tenant-user API (`/api/v1/login`, `/users`, `/tokens`, `/events`, …).
//! Management listener: `/api/v1/operator/...`, `/metrics`, `/healthz`. A route added to
//! one router does not exist on the other. Each route's [`Access`] is declared in its
//! table, next to the route.

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json, Router};
use kura_api::vault::{MAX_COMMIT_BYTES, MAX_PACK_BYTES};
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::RequiredPermission;
use crate::error::ApiError;
use kura_service::authz::{Permission, roles_markdown};

mod agent;
pub mod alerts;
pub(crate) mod approvals;
pub mod drills;
mod event_log;
mod jobs;
pub mod machines;
pub(crate) mod metering;
mod monitoring;
pub(crate) mod notices;
pub mod openapi;
mod operator;
pub(crate) mod operators;
pub mod plans;
mod requests;
pub mod reset;
pub mod restores;
mod runs;
pub mod snapshots;
pub mod support;
pub(crate) mod terminations;
mod totp;
pub mod types;
mod users;
mod vault;

/// Builds one route's handler (with its layers) for the method it is given, so the
/// method in the table is the one the router serves.
pub(crate) type MakeRoute = fn(MethodFilter) -> MethodRouter<AppState>;

/// Who may call a route. Role routes get their [`Permission`] attached as a
/// [`RequiredPermission`], which the user and operator extractors enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential: registration (a token in the body), sign-in, health.
    Open,
    /// The scrape token (`metrics_token_file`), or else a caller inside the management
    /// networks: the metrics name tenants.
    Scrape,
    /// An agent credential.
    Agent,
    /// A tenant user (customer listener) or an operator (management listener) whose role
    /// holds the permission.
    Role(Permission),
}

/// The routes of one area of one front end (JSON API now; the portal and the console use
/// the same type): method, path pattern, who may call it, and the handler.
pub struct RouteTable {
    pub area: &'static str,
    pub(crate) routes: &'static [(Method, &'static str, Access, MakeRoute)],
}

/// Agent registration and identity.
const AGENT_ROUTES: RouteTable = RouteTable {
    area: "agents",
    routes: &[
        (Method::POST, "/api/v1/agents/register", Access::Open, |m| {
            on(m, agent::register)
        }),
        (Method::GET, "/api/v1/agent/whoami", Access::Agent, |m| {
            on(m, agent::whoami)
        }),
        (Method::GET, "/api/v1/agent/plans", Access::Agent, |m| {
            on(m, agent::plans)
        }),
        (Method::POST, "/api/v1/agent/runs", Access::Agent, |m| {
            on(m, agent::start_run)
        }),
        (Method::PATCH, "/api/v1/agent/runs/{id}", Access::Agent, |m| {
            on(m, agent::report_run)
        }),
        (Method::PATCH, "/api/v1/agent/restores/{id}", Access::Agent, |m| {
            on(m, restores::report)
        }),
        (Method::POST, "/api/v1/agent/drills", Access::Agent, |m| {
            on(m, drills::start)
        }),
        (Method::PATCH, "/api/v1/agent/drills/{id}", Access::Agent, |m| {
            on(m, drills::report)
        }),
    ],
};

/// The vault protocol of registered agents.
const VAULT_ROUTES: RouteTable = RouteTable {
    area: "vault",
    routes: &[
        (Method::GET, "/api/v1/vault", Access::Agent, |m| {
            on(m, vault::info)
        }),
        (Method::POST, "/api/v1/vault", Access::Agent, |m| {
            on(m, vault::create)
        }),
        (Method::GET, "/api/v1/vault/key-slots", Access::Agent, |m| {
            on(m, vault::key_slots)
        }),
        (Method::POST, "/api/v1/vault/key-slots", Access::Agent, |m| {
            on(m, vault::add_key_slot)
        }),
        (
            Method::DELETE,
            "/api/v1/vault/key-slots/{id}",
            Access::Agent,
            |m| on(m, vault::remove_key_slot),
        ),
        (
            Method::PUT,
            "/api/v1/vault/machine-key-slot",
            Access::Agent,
            |m| on(m, vault::set_machine_key_slot),
        ),
        (Method::POST, "/api/v1/vault/sessions", Access::Agent, |m| {
            on(m, vault::open_session)
        }),
        (
            Method::DELETE,
            "/api/v1/vault/sessions/{session}",
            Access::Agent,
            |m| on(m, vault::abort_session),
        ),
        (
            Method::POST,
            "/api/v1/vault/sessions/{session}/heartbeat",
            Access::Agent,
            |m| on(m, vault::heartbeat),
        ),
        (
            Method::POST,
            "/api/v1/vault/sessions/{session}/missing",
            Access::Agent,
            |m| on(m, vault::missing),
        ),
        (
            Method::PUT,
            "/api/v1/vault/sessions/{session}/packs",
            Access::Agent,
            |m| on(m, vault::put_pack).layer(DefaultBodyLimit::max(MAX_PACK_BYTES)),
        ),
        (
            Method::POST,
            "/api/v1/vault/sessions/{session}/commit",
            Access::Agent,
            |m| on(m, vault::commit).layer(DefaultBodyLimit::max(MAX_COMMIT_BYTES)),
        ),
        (Method::GET, "/api/v1/jobs/{id}", Access::Agent, |m| {
            on(m, jobs::agent_job)
        }),
        (Method::GET, "/api/v1/vault/snapshots", Access::Agent, |m| {
            on(m, vault::snapshots)
        }),
        (
            Method::GET,
            "/api/v1/vault/snapshots/{spec}",
            Access::Agent,
            |m| on(m, vault::snapshot),
        ),
        (
            Method::POST,
            "/api/v1/vault/snapshots/{spec}/restores",
            Access::Agent,
            |m| on(m, vault::note_restore),
        ),
        (Method::POST, "/api/v1/vault/blobs", Access::Agent, |m| {
            on(m, vault::blobs)
        }),
        (Method::POST, "/api/v1/vault/forget", Access::Agent, |m| {
            on(m, vault::forget)
        }),
        (Method::POST, "/api/v1/vault/gc", Access::Agent, |m| {
            on(m, vault::gc)
        }),
        (Method::POST, "/api/v1/vault/verify", Access::Agent, |m| {
            on(m, vault::verify)
        }),
        (Method::GET, "/api/v1/vault/usage", Access::Agent, |m| {
            on(m, vault::usage)
        }),
    ],
};

/// Sign-in and a user's own account: password, sessions, API tokens, TOTP.
const ACCOUNT_ROUTES: RouteTable = RouteTable {
    area: "accounts",
    routes: &[
        (Method::POST, "/api/v1/login", Access::Open, |m| {
            on(m, users::login)
        }),
        (Method::POST, "/api/v1/password/forgot", Access::Open, |m| {
            on(m, reset::forgot)
        }),
        (Method::POST, "/api/v1/password/reset", Access::Open, |m| {
            on(m, reset::reset)
        }),
        (
            Method::POST,
            "/api/v1/logout",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::logout),
        ),
        (
            Method::GET,
            "/api/v1/me",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::me),
        ),
        (
            Method::PATCH,
            "/api/v1/me",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::update_me),
        ),
        (
            Method::POST,
            "/api/v1/password",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::change_password),
        ),
        (
            Method::GET,
            "/api/v1/sessions",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::sessions),
        ),
        (
            Method::DELETE,
            "/api/v1/sessions/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::revoke_session),
        ),
        (
            Method::GET,
            "/api/v1/tokens",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::tokens),
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::create_token),
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, users::revoke_token),
        ),
        (
            Method::POST,
            "/api/v1/totp/enroll",
            Access::Role(Permission::ViewStatus),
            |m| on(m, totp::enroll),
        ),
        (
            Method::POST,
            "/api/v1/totp/confirm",
            Access::Role(Permission::ViewStatus),
            |m| on(m, totp::confirm),
        ),
        (
            Method::DELETE,
            "/api/v1/totp",
            Access::Role(Permission::ViewStatus),
            |m| on(m, totp::disable),
        ),
    ],
};

/// User administration.
const USER_ROUTES: RouteTable = RouteTable {
    area: "users",
    routes: &[
        (
            Method::POST,
            "/api/v1/users/{id}/reset-password",
            Access::Role(Permission::ManageUsers),
            |m| on(m, reset::force_reset),
        ),
        (
            Method::GET,
            "/api/v1/users",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::list_users),
        ),
        (
            Method::POST,
            "/api/v1/users",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::create_user),
        ),
        (
            Method::PATCH,
            "/api/v1/users/{id}",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::update_user),
        ),
        (
            Method::DELETE,
            "/api/v1/users/{id}",
            Access::Role(Permission::ManageUsers),
            |m| on(m, users::delete_user),
        ),
    ],
};

/// The tenant's machines, for its users.
const MACHINE_ROUTES: RouteTable = RouteTable {
    area: "machines",
    routes: &[
        (
            Method::GET,
            "/api/v1/machines",
            Access::Role(Permission::ViewStatus),
            |m| on(m, machines::list),
        ),
        (
            Method::GET,
            "/api/v1/usage",
            Access::Role(Permission::ViewStatus),
            |m| on(m, machines::usage),
        ),
        (
            Method::PATCH,
            "/api/v1/machines/{id}",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::update),
        ),
        (
            Method::DELETE,
            "/api/v1/machines/{id}",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::revoke),
        ),
        (
            Method::POST,
            "/api/v1/registration-tokens",
            Access::Role(Permission::OperateBackups),
            |m| on(m, machines::issue_registration_token),
        ),
    ],
};

/// The tenant's protection plans.
const PLAN_ROUTES: RouteTable = RouteTable {
    area: "plans",
    routes: &[
        (
            Method::GET,
            "/api/v1/plans",
            Access::Role(Permission::ViewStatus),
            |m| on(m, plans::list),
        ),
        (
            Method::POST,
            "/api/v1/plans",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::create),
        ),
        (
            Method::GET,
            "/api/v1/plans/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, plans::show),
        ),
        (
            Method::PATCH,
            "/api/v1/plans/{id}",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::update),
        ),
        (
            Method::DELETE,
            "/api/v1/plans/{id}",
            Access::Role(Permission::OperateBackups),
            |m| on(m, plans::delete),
        ),
        (
            Method::GET,
            "/api/v1/runs",
            Access::Role(Permission::ViewStatus),
            |m| on(m, runs::list),
        ),
        (
            Method::GET,
            "/api/v1/alerts",
            Access::Role(Permission::ViewStatus),
            |m| on(m, alerts::list),
        ),
        (
            Method::POST,
            "/api/v1/restores",
            Access::Role(Permission::Restore),
            |m| on(m, restores::create),
        ),
        (
            Method::GET,
            "/api/v1/restores",
            Access::Role(Permission::ViewStatus),
            |m| on(m, restores::list),
        ),
        (
            Method::GET,
            "/api/v1/restores/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, restores::show),
        ),
        (
            Method::GET,
            "/api/v1/drills",
            Access::Role(Permission::ViewStatus),
            |m| on(m, drills::list),
        ),
    ],
};

/// The tenant's security settings, support access and event log.
const SECURITY_ROUTES: RouteTable = RouteTable {
    area: "security",
    routes: &[
        (
            Method::GET,
            "/api/v1/tenant/admin-networks",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, users::admin_networks),
        ),
        (
            Method::PUT,
            "/api/v1/tenant/admin-networks",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, users::set_admin_networks),
        ),
        (
            Method::GET,
            "/api/v1/events",
            Access::Role(Permission::ReadEvents),
            |m| on(m, users::events),
        ),
        (
            Method::GET,
            "/api/v1/tenant/totp-policy",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, totp::policy),
        ),
        (
            Method::PUT,
            "/api/v1/tenant/totp-policy",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, totp::set_policy),
        ),
        (
            Method::GET,
            "/api/v1/tenant/support-access",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, support::show),
        ),
        (
            Method::PUT,
            "/api/v1/tenant/support-access",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, support::grant),
        ),
        (
            Method::DELETE,
            "/api/v1/tenant/support-access",
            Access::Role(Permission::ManageSecurity),
            |m| on(m, support::revoke),
        ),
    ],
};

/// The tenant's snapshots for tenant users: list and show (`view-status`), browse and
/// download (`restore`; `POST` carries an encrypted vault's passphrase in a form).
const SNAPSHOT_ROUTES: RouteTable = RouteTable {
    area: "snapshots",
    routes: &[
        (
            Method::GET,
            "/api/v1/snapshots",
            Access::Role(Permission::ViewStatus),
            |m| on(m, snapshots::list),
        ),
        (
            Method::GET,
            "/api/v1/snapshots/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, snapshots::show),
        ),
        (
            Method::GET,
            "/api/v1/snapshots/{id}/tree",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::tree),
        ),
        (
            Method::POST,
            "/api/v1/snapshots/{id}/tree",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::tree_form),
        ),
        (
            Method::GET,
            "/api/v1/snapshots/{id}/download",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::download),
        ),
        (
            Method::POST,
            "/api/v1/snapshots/{id}/download",
            Access::Role(Permission::Restore),
            |m| on(m, snapshots::download_form),
        ),
    ],
};

/// The customer listener's OpenAPI document.
const CUSTOMER_DOCUMENT_ROUTES: RouteTable = RouteTable {
    area: "openapi",
    routes: &[(Method::GET, "/api/v1/openapi.json", Access::Open, |m| {
        on(m, openapi::api_document)
    })],
};

/// Every table of the customer listener: the router is built from them, and the isolation
/// suite and the role matrix walk them ([`customer_route_table`]), so a route cannot be
/// added without them noticing.
const CUSTOMER: &[&RouteTable] = &[
    &crate::portal::PORTAL_ROUTES,
    &CUSTOMER_DOCUMENT_ROUTES,
    &AGENT_ROUTES,
    &VAULT_ROUTES,
    &ACCOUNT_ROUTES,
    &TENANT_NOTICE_ROUTES,
    &USER_ROUTES,
    &MACHINE_ROUTES,
    &PLAN_ROUTES,
    &SECURITY_ROUTES,
    &SNAPSHOT_ROUTES,
];

/// The provider's notices and support requests, for tenant users.
const TENANT_NOTICE_ROUTES: RouteTable = RouteTable {
    area: "notices",
    routes: &[
        (
            Method::GET,
            "/api/v1/notices",
            Access::Role(Permission::ViewStatus),
            |m| on(m, notices::for_user),
        ),
        (
            Method::POST,
            "/api/v1/notices/{id}/read",
            Access::Role(Permission::ViewStatus),
            |m| on(m, notices::mark_read),
        ),
        (
            Method::POST,
            "/api/v1/support-requests",
            Access::Role(Permission::ViewStatus),
            |m| on(m, requests::open),
        ),
        (
            Method::GET,
            "/api/v1/support-requests",
            Access::Role(Permission::ViewStatus),
            |m| on(m, requests::list_own),
        ),
        (
            Method::GET,
            "/api/v1/support-requests/{id}",
            Access::Role(Permission::ViewStatus),
            |m| on(m, requests::get_own),
        ),
        (
            Method::POST,
            "/api/v1/support-requests/{id}/replies",
            Access::Role(Permission::ViewStatus),
            |m| on(m, requests::reply_own),
        ),
    ],
};

/// Health, metrics and the management API's OpenAPI document, for the provider's
/// monitoring and tooling.
const MONITORING_ROUTES: RouteTable = RouteTable {
    area: "monitoring",
    routes: &[
        (Method::GET, "/healthz", Access::Open, |m| {
            on(m, monitoring::healthz)
        }),
        (Method::GET, "/metrics", Access::Scrape, |m| {
            on(m, monitoring::metrics)
        }),
        (Method::GET, "/api/v1/operator/openapi.json", Access::Open, |m| {
            on(m, openapi::operator_document)
        }),
    ],
};

/// Tenants, contracts, registration tokens and machines, for operators.
const OPERATOR_ROUTES: RouteTable = RouteTable {
    area: "operator",
    routes: &[
        (
            Method::POST,
            "/api/v1/operator/tenants",
            Access::Role(Permission::ManageTenants),
            |m| on(m, operator::create_tenant),
        ),
        (
            Method::GET,
            "/api/v1/operator/tenants",
            Access::Role(Permission::ReadTenants),
            |m| on(m, operator::list_tenants),
        ),
        (
            Method::GET,
            "/api/v1/operator/tenants/{tenant_id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, operator::show_tenant),
        ),
        (
            Method::PATCH,
            "/api/v1/operator/tenants/{tenant_id}",
            Access::Role(Permission::ManageTenants),
            |m| on(m, operator::update_tenant),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/suspend",
            Access::Role(Permission::ManageTenants),
            |m| on(m, operator::suspend_tenant),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/resume",
            Access::Role(Permission::ManageTenants),
            |m| on(m, operator::resume_tenant),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/registration-tokens",
            Access::Role(Permission::ManageMachines),
            |m| on(m, operator::issue_registration_token),
        ),
        (
            Method::GET,
            "/api/v1/operator/tenants/{tenant_id}/machines",
            Access::Role(Permission::ReadTenants),
            |m| on(m, operator::list_machines),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/machines/{machine_id}/revoke",
            Access::Role(Permission::ManageMachines),
            |m| on(m, operator::revoke_machine),
        ),
        (
            Method::GET,
            "/api/v1/operator/tenants/{tenant_id}/snapshots",
            Access::Role(Permission::ReadTenants),
            |m| on(m, support::operator_snapshots),
        ),
    ],
};

/// The service's jobs, for operators.
const JOB_ROUTES: RouteTable = RouteTable {
    area: "jobs",
    routes: &[
        (
            Method::GET,
            "/api/v1/operator/jobs",
            Access::Role(Permission::ReadTenants),
            |m| on(m, jobs::list),
        ),
        (
            Method::POST,
            "/api/v1/operator/jobs",
            Access::Role(Permission::RunJobs),
            |m| on(m, jobs::run),
        ),
        (
            Method::GET,
            "/api/v1/operator/jobs/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, jobs::get),
        ),
    ],
};

/// Operator accounts: sign-in, one's own account, and the accounts an operator-admin manages.
const OPERATOR_ACCOUNT_ROUTES: RouteTable = RouteTable {
    area: "operator accounts",
    routes: &[
        (Method::POST, "/api/v1/operator/login", Access::Open, |m| {
            on(m, operators::login)
        }),
        (
            Method::POST,
            "/api/v1/operator/logout",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::logout),
        ),
        (
            Method::GET,
            "/api/v1/operator/me",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::me),
        ),
        (
            Method::POST,
            "/api/v1/operator/account/password",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::change_password),
        ),
        (
            Method::POST,
            "/api/v1/operator/account/totp/enroll",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::totp_enroll),
        ),
        (
            Method::POST,
            "/api/v1/operator/account/totp/confirm",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::totp_confirm),
        ),
        (
            Method::GET,
            "/api/v1/operator/account/sessions",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::sessions),
        ),
        (
            Method::DELETE,
            "/api/v1/operator/account/sessions/{id}",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::end_session),
        ),
        (
            Method::GET,
            "/api/v1/operator/tokens",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::list_tokens),
        ),
        (
            Method::POST,
            "/api/v1/operator/tokens",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::create_token),
        ),
        (
            Method::DELETE,
            "/api/v1/operator/tokens/{id}",
            Access::Role(Permission::OwnAccount),
            |m| on(m, operators::revoke_token),
        ),
        (
            Method::GET,
            "/api/v1/operator/operators",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::list_operators),
        ),
        (
            Method::POST,
            "/api/v1/operator/operators",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::create_operator),
        ),
        (
            Method::DELETE,
            "/api/v1/operator/operators/{id}",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::delete_operator),
        ),
        (
            Method::POST,
            "/api/v1/operator/operators/{id}/disable",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::disable_operator),
        ),
        (
            Method::POST,
            "/api/v1/operator/operators/{id}/enable",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::enable_operator),
        ),
        (
            Method::POST,
            "/api/v1/operator/operators/{id}/reset-totp",
            Access::Role(Permission::ManageOperators),
            |m| on(m, operators::reset_operator_totp),
        ),
    ],
};

/// Notices to tenants, for operators.
const NOTICE_ROUTES: RouteTable = RouteTable {
    area: "notices",
    routes: &[
        (
            Method::POST,
            "/api/v1/operator/notices",
            Access::Role(Permission::Communicate),
            |m| on(m, notices::publish),
        ),
        (
            Method::GET,
            "/api/v1/operator/notices",
            Access::Role(Permission::ReadTenants),
            |m| on(m, notices::list),
        ),
        (
            Method::GET,
            "/api/v1/operator/notices/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, notices::get),
        ),
        (
            Method::PATCH,
            "/api/v1/operator/notices/{id}",
            Access::Role(Permission::Communicate),
            |m| on(m, notices::update),
        ),
    ],
};

/// Tenants' support requests, for operators.
const REQUEST_ROUTES: RouteTable = RouteTable {
    area: "support",
    routes: &[
        (
            Method::GET,
            "/api/v1/operator/support-requests",
            Access::Role(Permission::ReadTenants),
            |m| on(m, requests::list),
        ),
        (
            Method::GET,
            "/api/v1/operator/support-requests/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, requests::get),
        ),
        (
            Method::POST,
            "/api/v1/operator/support-requests/{id}/replies",
            Access::Role(Permission::Communicate),
            |m| on(m, requests::reply),
        ),
    ],
};

/// Termination of tenants and the deletion records of their purges, for operators.
const TERMINATION_ROUTES: RouteTable = RouteTable {
    area: "termination",
    routes: &[
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/terminate",
            Access::Role(Permission::ManageTenants),
            |m| on(m, terminations::terminate),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/cancel-termination",
            Access::Role(Permission::ManageTenants),
            |m| on(m, terminations::cancel),
        ),
        (
            Method::POST,
            "/api/v1/operator/tenants/{tenant_id}/purge-now",
            Access::Role(Permission::ManageTenants),
            |m| on(m, terminations::purge_now),
        ),
        (
            Method::GET,
            "/api/v1/operator/deletion-key",
            Access::Role(Permission::ReadTenants),
            |m| on(m, terminations::key),
        ),
        (
            Method::GET,
            "/api/v1/operator/deletions",
            Access::Role(Permission::ReadTenants),
            |m| on(m, terminations::list),
        ),
        (
            Method::GET,
            "/api/v1/operator/deletions/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, terminations::show),
        ),
    ],
};

/// The metering export, for operators (billing).
const METERING_ROUTES: RouteTable = RouteTable {
    area: "metering",
    routes: &[(
        Method::GET,
        "/api/v1/operator/usage",
        Access::Role(Permission::ReadTenants),
        |m| on(m, metering::export),
    )],
};

/// The operator work log and the check of every event chain.
const WORK_LOG_ROUTES: RouteTable = RouteTable {
    area: "work log",
    routes: &[
        (
            Method::GET,
            "/api/v1/operator/events",
            Access::Role(Permission::ReadWorkLog),
            |m| on(m, event_log::work_log),
        ),
        (
            Method::GET,
            "/api/v1/operator/events/verify",
            Access::Role(Permission::ReadWorkLog),
            |m| on(m, event_log::verify),
        ),
    ],
};

/// The two-person rule's requests, for operators.
const APPROVAL_ROUTES: RouteTable = RouteTable {
    area: "approvals",
    routes: &[
        (
            Method::GET,
            "/api/v1/operator/approvals",
            Access::Role(Permission::ReadTenants),
            |m| on(m, approvals::list),
        ),
        (
            Method::GET,
            "/api/v1/operator/approvals/{id}",
            Access::Role(Permission::ReadTenants),
            |m| on(m, approvals::show),
        ),
        (
            Method::POST,
            "/api/v1/operator/approvals/{id}/approve",
            Access::Role(Permission::Approve),
            |m| on(m, approvals::approve),
        ),
        (
            Method::POST,
            "/api/v1/operator/approvals/{id}/reject",
            Access::Role(Permission::Approve),
            |m| on(m, approvals::reject),
        ),
    ],
};

/// Every table of the management listener.
const MANAGEMENT: &[&RouteTable] = &[
    &crate::console::CONSOLE_ROUTES,
    &MONITORING_ROUTES,
    &OPERATOR_ACCOUNT_ROUTES,
    &OPERATOR_ROUTES,
    &NOTICE_ROUTES,
    &REQUEST_ROUTES,
    &TERMINATION_ROUTES,
    &APPROVAL_ROUTES,
    &METERING_ROUTES,
    &WORK_LOG_ROUTES,
    &JOB_ROUTES,
];

/// Method, path pattern and access of every customer route, as the router has them.
pub fn customer_route_table() -> Vec<(Method, &'static str, Access)> {
    listing(CUSTOMER)
}

/// Method, path pattern and access of every management route.
pub fn management_route_table() -> Vec<(Method, &'static str, Access)> {
    listing(MANAGEMENT)
}

/// Whether a route is part of the JSON API (and of its OpenAPI document) rather than a
/// page or file of the portal.
pub(crate) fn is_json_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/healthz" || path == "/metrics"
}

fn routes(
    tables: &'static [&'static RouteTable],
) -> impl Iterator<Item = &'static (Method, &'static str, Access, MakeRoute)> {
    tables.iter().flat_map(|table| table.routes.iter())
}

fn listing(tables: &'static [&'static RouteTable]) -> Vec<(Method, &'static str, Access)> {
    routes(tables)
        .map(|(method, path, access, _)| (method.clone(), *path, *access))
        .collect()
}

/// `docs/roles.md`, generated from the role table and both route tables.
pub fn roles_doc() -> String {
    let described = |tables: &'static [&'static RouteTable]| -> Vec<(String, String)> {
        routes(tables)
            .map(|(method, path, access, _)| {
                let needs = match access {
                    Access::Role(permission) => permission.as_str(),
                    Access::Agent => "an agent credential",
                    Access::Open => "no role (see below)",
                    Access::Scrape => "the scrape token or a management network (see below)",
                };
                (format!("{method} {path}"), needs.to_owned())
            })
            .collect()
    };
    roles_markdown(&described(CUSTOMER), &described(MANAGEMENT))
}

/// Builds a router from a table; routes of one path with several methods merge.
fn router_from(tables: &'static [&'static RouteTable]) -> Router<AppState> {
    routes(tables).fold(Router::new(), |router, (method, path, access, make)| {
        let filter = MethodFilter::try_from(method.clone()).expect("the table uses standard methods");
        let route = match access {
            Access::Role(permission) => make(filter).layer(Extension(RequiredPermission(*permission))),
            Access::Open | Access::Agent | Access::Scrape => make(filter),
        };
        router.route(path, route)
    })
}

/// Routes of the customer listener.
pub(crate) fn customer_routes() -> Router<AppState> {
    router_from(CUSTOMER)
}

/// Routes of the management listener.
pub(crate) fn management_routes() -> Router<AppState> {
    router_from(MANAGEMENT)
}

/// A JSON request body whose every failure is a precise JSON error: 400 for malformed
/// JSON, 422 for a missing, unknown or mistyped field, 413 for an oversized body, 415
/// without `Content-Type: application/json`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection, state.config.max_body)),
        }
    }
}

/// A raw request body (packs, id lists, frames) whose failures are JSON errors like
/// [`ApiJson`]'s: 413 with the limits for an oversized body.
pub struct ApiBytes(pub Bytes);

impl FromRequest<AppState> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is too large: a pack may have at most {MAX_PACK_BYTES} bytes, \
                     a commit {MAX_COMMIT_BYTES}, other requests at most {} bytes; nothing was stored",
                    state.config.max_body
                ),
            )),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                format!("cannot read request body: {}", rejection.body_text()),
            )),
        }
    }
}

fn json_rejection(rejection: JsonRejection, max_body: u64) -> ApiError {
    // axum's own texts prefix a generic sentence to serde's precise one; keep serde's.
    let detail = |err: &dyn std::error::Error| {
        let mut innermost = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            innermost = next.to_string();
            source = next.source();
        }
        innermost
    };
    match rejection {
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request(format!("malformed JSON: {}", detail(&err)))
        }
        JsonRejection::JsonDataError(err) => {
            ApiError::invalid(format!("invalid request body: {}", detail(&err)))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is too large: the limit is {max_body} bytes"),
        ),
        other => ApiError::new(
            other.status(),
            format!("cannot read request body: {}", other.body_text()),
        ),
    }
}

/// Fallback for paths no route matches.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such API route: {}", uri.path()))
}

/// Fallback of both listeners: JSON under `/api/`, a page elsewhere (portal, console).
pub(crate) async fn no_route_or_page(uri: Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        no_route(uri).await.into_response()
    } else {
        crate::portal::not_found(&headers)
    }
}

/// Fallback for a known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not accept that HTTP method",
    )
}

/// A query's id filter (`machine=`, `plan=`): absent, or an id of the shape `parse`
/// accepts; anything else is refused naming the field.
pub(super) fn id_filter<T>(
    what: &str,
    value: Option<String>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|id| {
            parse(&id)
                .ok_or_else(|| ApiError::invalid(format!("{what}: {id:?} is not an id (32 hex digits)")))
        })
        .transpose()
}

/// A time a query gives (`from=`, `to=`), in milliseconds.
pub(super) fn parse_time(what: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|text| {
        text.parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| {
                ApiError::invalid(format!(
                    "{what} must be an RFC 3339 time such as 2026-04-01T00:00:00+09:00"
                ))
            })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_doc_matches_the_table() {
        let expected = super::roles_doc();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/roles.md");
        if std::env::var_os("KURA_WRITE_ROLES_DOC").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "docs/roles.md is out of date: run with KURA_WRITE_ROLES_DOC=1 to regenerate it"
        );
    }
}
