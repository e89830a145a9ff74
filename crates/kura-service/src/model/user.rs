//! Tenant users, their sessions, API tokens and TOTP state.

use std::fmt;

use ipnet::IpNet;

use crate::authz::TenantRole;
use crate::ids::{TenantId, UserId};
use crate::model::TenantStatus;
use crate::totp::TotpPolicy;

/// A person who signs in to the portal for a tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTenantUser {
    /// Unique across the whole service.
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: TenantRole,
    /// Where password reset links go.
    pub email: Option<String>,
}

impl fmt::Debug for NewTenantUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTenantUser")
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A tenant user as stored, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUserRecord {
    pub id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub disabled_ms: Option<i64>,
    pub created_ms: i64,
    pub totp_enrolled: bool,
    pub email: Option<String>,
    /// The user's own choice of language for pages and mail, if any.
    pub language: Option<super::Language>,
    /// Whether alerts are mailed to the user (admins and operators with an address).
    pub alert_mail: bool,
}

/// Changes to a user; `None` keeps the current value. Disabling revokes the user's
/// sessions and API tokens.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<TenantRole>,
    pub disabled: Option<bool>,
    pub email: Option<String>,
}

/// What a login attempt is checked against, found by the login ID.
#[derive(Clone)]
pub struct LoginCandidate {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: TenantRole,
    pub disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    /// The active TOTP secret (base32), if enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub totp_policy: TotpPolicy,
    /// Where password reset links go.
    pub email: Option<String>,
}

impl fmt::Debug for LoginCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Failed logins inside a time window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub by_login: u32,
    pub last_by_login_ms: Option<i64>,
    pub by_source: u32,
    pub last_by_source_ms: Option<i64>,
}

/// A portal session about to be stored; the secrets only as hashes.
#[derive(Debug, Clone)]
pub struct NewUserSession {
    pub id: String,
    pub user_id: UserId,
    pub session_hash: String,
    pub csrf_hash: String,
    pub source: String,
}

/// Who holds a session cookie, found by the cookie's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    pub session_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub csrf_hash: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked: bool,
    pub user_disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    pub totp_enrolled: bool,
    pub totp_policy: TotpPolicy,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSessionRecord {
    pub id: String,
    pub source: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// An API token about to be stored (by its hash).
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub role: TenantRole,
    pub token_hash: String,
    pub expires_ms: i64,
}

/// Who holds an API token, found by the token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenIdentity {
    pub token_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub user_role: TenantRole,
    pub token_role: TenantRole,
    pub expires_ms: i64,
    pub revoked: bool,
    pub user_disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    pub totp_enrolled: bool,
    pub totp_policy: TotpPolicy,
}

/// A user's TOTP state.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TotpState {
    /// The active secret (base32).
    pub secret: Option<String>,
    /// A secret handed out for enrolment, not yet confirmed with a code.
    pub pending: Option<String>,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

impl fmt::Debug for TotpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpState")
            .field("enrolled", &self.secret.is_some())
            .field("pending", &self.pending.is_some())
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// An API token as its owner sees it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub role: TenantRole,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}
