//! Who may reach what: the role table ([`roles`]), the principals an authenticated
//! request acts as, and the scopes that open a tenant's rows.
//!
//! - [`TenantScope`] opens a tenant's customer data (vault, snapshots, event log) and its
//!   contract. It is made only here: from a credential this module has resolved (an
//!   agent credential, a user's session, password or API token, a reset link, a
//!   registration token), or for an operator from a live support-access grant
//!   ([`support_scope`]). Nothing outside this module can construct one, so a handler
//!   that forgot to authenticate has no way to reach tenant data.
//! - [`ContractScope`] is an operator's view of one tenant: the tenant record, its
//!   users, machines, registration tokens and usage totals, never its customer data.
//!
//! Database functions about a tenant's rows take a [`TenantKey`] (either scope) or, for
//! customer data, a `TenantScope` only.
//!
//! ```compile_fail
//! // Handler code cannot make a scope for a tenant id it read from a URL:
//! let id = kura_service::ids::TenantId::generate();
//! let scope = kura_service::authz::TenantScope { tenant_id: id };
//! ```
//!
//! ```compile_fail
//! let id = kura_service::ids::TenantId::generate();
//! let scope = kura_service::authz::TenantScope::authenticated(id);
//! ```

use std::net::IpAddr;

use crate::audit::Actor;
use crate::ids::{MachineId, OperatorId, TenantId, UserId};
use crate::{ServiceError, ServiceResult};

mod authenticate;
mod operator_signin;
pub mod roles;
mod signin;

pub use authenticate::{UserCheck, agent, api_token, refuse_inactive_tenant, session, support_scope};
pub(crate) use operator_signin::totp_context as operator_totp_context;
pub use operator_signin::{
    OperatorSignIn, OperatorSignedIn, operator, operator_second_factor, operator_session, operator_sign_in,
    operator_sign_in_step, verify_operator_password,
};
pub use roles::{Permission, ProviderRole, TENANT_PERMISSIONS, TenantRole, roles_markdown};
pub use signin::{
    ForgotTarget, RedeemedReset, RegisteredMachine, SECOND_FACTOR_WINDOW_MS, SignInStep, SignedIn, Throttle,
    forgot_target, redeem_reset, register_machine, registration_refusal, second_factor, sign_in,
    sign_in_step, source_key, throttle, verify_user_code, verify_user_password,
};

mod sealed {
    pub trait Sealed {}
}

/// A scope that names one tenant's rows: [`TenantScope`] or [`ContractScope`].
pub trait TenantKey: sealed::Sealed + Sync {
    fn tenant_id(&self) -> &TenantId;
}

/// Proof that the current request may act on one tenant's data. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: TenantId,
}

impl TenantScope {
    /// The scope of a credential this module has just resolved to this tenant.
    fn authenticated(tenant_id: TenantId) -> Self {
        TenantScope { tenant_id }
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }

    /// A scope for this crate's own unit tests of the database layer.
    #[cfg(test)]
    pub(crate) fn for_tests(tenant_id: TenantId) -> Self {
        TenantScope { tenant_id }
    }
}

/// The scope of the service's own work for a tenant (its jobs and its mail), which no
/// request reaches: only code in this crate can call it.
pub(crate) fn service_scope(tenant_id: &TenantId) -> TenantScope {
    TenantScope {
        tenant_id: tenant_id.clone(),
    }
}

impl sealed::Sealed for TenantScope {}

impl TenantKey for TenantScope {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
}

/// An operator's view of one tenant's contract (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractScope {
    tenant_id: TenantId,
}

impl ContractScope {
    /// Taking the principal by reference means only code that authenticated an operator
    /// can call this.
    pub fn new(_operator: &OperatorPrincipal, tenant_id: TenantId) -> Self {
        ContractScope { tenant_id }
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
}

impl sealed::Sealed for ContractScope {}

impl TenantKey for ContractScope {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
}

/// The request's origin, for the event log: the client address and the request id.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub source: Option<IpAddr>,
    pub request_id: String,
}

impl Caller {
    /// The actor `name` making this request.
    pub fn actor(&self, name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            source: self.source,
            request_id: self.request_id.clone(),
        }
    }
}

/// Refuses unless `allowed`; names the role and the permission.
fn require(role: &str, permission: Permission, allowed: bool) -> ServiceResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::forbidden(format!(
            "your role ({role}) may not do this: it needs the {} permission (see docs/roles.md); ask an admin",
            permission.as_str()
        )))
    }
}

/// How an operator authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCredential {
    /// An API token, by its id.
    Token(String),
    /// A console session, by its id (not the cookie).
    Session(String),
}

/// An authenticated operator (provider staff).
#[derive(Debug, Clone)]
pub struct OperatorPrincipal {
    /// The account's login ID, or the name an accountless token was issued under.
    name: String,
    /// The role in force: the account's, or a token's (never above its owner's).
    role: ProviderRole,
    /// The account, for everyone but the tokens of a fresh service (bootstrap, quickstart).
    account: Option<OperatorId>,
    credential: OperatorCredential,
    /// Whether the account has finished its first sign-in (TOTP enrolled, its own
    /// password set); until then a session may only do that, or sign out.
    set_up: bool,
}

impl OperatorPrincipal {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> ProviderRole {
        self.role
    }

    pub fn account(&self) -> Option<&OperatorId> {
        self.account.as_ref()
    }

    pub fn credential(&self) -> &OperatorCredential {
        &self.credential
    }

    /// Whether the account has finished its first sign-in (see the field).
    pub fn is_set_up(&self) -> bool {
        self.set_up
    }

    /// The account and session of an operator signed in to the console: only sessions
    /// manage their own account (password, TOTP, tokens), never API tokens.
    pub fn session(&self) -> ServiceResult<(&OperatorId, &str)> {
        match (&self.account, &self.credential) {
            (Some(account), OperatorCredential::Session(session)) => Ok((account, session)),
            _ => Err(ServiceError::forbidden(
                "only an operator signed in with a password and TOTP may do this, not an API token",
            )),
        }
    }

    /// Refuses unless the operator's role holds `permission`.
    pub fn require(&self, permission: Permission) -> ServiceResult<()> {
        require(self.role.as_str(), permission, self.role.allows(permission))
    }

    /// An operator for this crate's own unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        OperatorPrincipal {
            name: "tests".to_owned(),
            role: ProviderRole::OperatorAdmin,
            account: None,
            credential: OperatorCredential::Token("tests".to_owned()),
            set_up: true,
        }
    }

    /// How the operator appears in the event log.
    pub fn actor(&self, caller: &Caller) -> Actor {
        caller.actor(format!("operator:{}", self.name))
    }
}

/// An authenticated agent: the machine, and the scope of its tenant.
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub scope: TenantScope,
    pub machine_id: MachineId,
    /// The tenant's time zone (read with the credential), which dates what it does.
    pub time_zone: String,
    /// Actor, address and request id for the event log.
    pub actor: Actor,
}

/// How a user authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCredential {
    /// A portal session, by its id (not the cookie).
    Session(String),
    /// An API token, by its id.
    ApiToken(String),
}

/// An authenticated tenant user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub scope: TenantScope,
    pub user_id: UserId,
    pub login: String,
    /// The role in force: the user's, or an API token's (never above its owner's).
    pub role: TenantRole,
    pub credential: UserCredential,
    /// Actor, address and request id for the event log.
    pub actor: Actor,
}

impl UserPrincipal {
    /// Refuses unless the role in force holds `permission`.
    pub fn require(&self, permission: Permission) -> ServiceResult<()> {
        require(self.role.as_str(), permission, self.role.allows(permission))
    }

    /// The session id when signed in with a cookie; API tokens cannot change passwords,
    /// create tokens or manage sessions.
    pub fn session_id(&self) -> ServiceResult<&str> {
        match &self.credential {
            UserCredential::Session(id) => Ok(id),
            UserCredential::ApiToken(_) => Err(ServiceError::forbidden(
                "API tokens cannot do this; sign in with your password (POST /api/v1/login)",
            )),
        }
    }
}
