//! Request and response bodies of the operator and agent APIs, shared by the handlers and
//! the `kura-server` command-line client. (They move to `kura-api` when the agent needs
//! them.)

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use kura_service::authz::TenantRole;
use kura_service::model::{ApiTokenRecord, MachineRecord, TenantRecord, TenantUserRecord};
pub use kura_service::rfc3339;
use kura_service::totp::TotpPolicy;

pub use kura_service::model::SignedDeletionRecord;
pub use kura_service::ops::tenants::{CreateTenantRequest, UpdateTenantRequest};
pub use kura_service::ops::terminations::TerminateRequest;

pub use super::approvals::ApprovalView;
pub use super::terminations::{DeletionKeyView, DeletionSummaryView, TerminatedTenant, TerminationView};
pub use kura_service::model::MeterRow;

use super::openapi::{tenant_role, totp_policy};

/// A tenant as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub service_code: String,
    pub name: String,
    pub quota_bytes: u64,
    pub max_machines: u32,
    pub region: String,
    pub encryption_required: bool,
    pub immutable_days: u32,
    pub agent_networks: Vec<String>,
    /// `active`, `suspended` or `terminated`.
    pub status: String,
    pub time_zone: String,
    /// `ja` or `en` when the contract sets the tenant's language; otherwise the time zone
    /// decides (Japanese for Asia/Tokyo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// RFC 3339, UTC.
    pub created: String,
}

impl From<&TenantRecord> for TenantView {
    fn from(tenant: &TenantRecord) -> Self {
        TenantView {
            id: tenant.id.to_string(),
            service_code: tenant.service_code.clone(),
            name: tenant.name.clone(),
            quota_bytes: tenant.quota_bytes,
            max_machines: tenant.max_machines,
            region: tenant.region.clone(),
            encryption_required: tenant.encryption_required,
            immutable_days: tenant.immutable_days,
            agent_networks: tenant.agent_networks.iter().map(ToString::to_string).collect(),
            status: tenant.status.as_str().to_owned(),
            time_zone: tenant.time_zone.clone(),
            language: tenant.language.map(|l| l.as_str().to_owned()),
            created: rfc3339(tenant.created_ms),
        }
    }
}

/// A portal user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub login: String,
    pub role: String,
    pub disabled: bool,
    pub totp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub created: String,
    /// Set while failed sign-ins keep the login ID locked (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

impl From<&TenantUserRecord> for UserView {
    fn from(user: &TenantUserRecord) -> Self {
        UserView {
            id: user.id.to_string(),
            login: user.login.clone(),
            role: user.role.as_str().to_owned(),
            disabled: user.disabled_ms.is_some(),
            totp: user.totp_enrolled,
            email: user.email.clone(),
            created: rfc3339(user.created_ms),
            locked_until: None,
        }
    }
}

/// `POST /api/v1/login`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
    /// The current TOTP code, when enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// Answer to a sign-in. The session itself is in the `kura_session` cookie; every
/// request that changes something must carry `csrf_token` in `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub tenant_id: String,
    pub user_id: String,
    pub login: String,
    pub role: String,
    pub csrf_token: String,
    /// When the session ends at the latest (RFC 3339, UTC).
    pub expires: String,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    pub tenant_id: String,
    pub user_id: String,
    pub login: String,
    pub role: String,
    /// `session` or `api-token`.
    pub credential: String,
    /// The user's own choice of language (`ja` or `en`); `None` follows the tenant's.
    pub language: Option<String>,
    /// Whether alerts are mailed to the user (admins and operators with an address).
    pub alert_mail: bool,
    /// Where alerts and password reset links go.
    pub email: Option<String>,
}

/// `PATCH /api/v1/me`: the caller's own settings; an absent field stays as it is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// `ja`, `en`, or `null` to follow the tenant's language.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// `false` stops alert mail to the caller; `true` resumes it.
    #[serde(default)]
    pub alert_mail: Option<bool>,
}

/// A field that is present (even as `null`) is `Some`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /api/v1/users`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub login: String,
    #[schema(schema_with = tenant_role)]
    pub role: TenantRole,
    /// The first password; without one, a random password is generated and shown once.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// Where password reset links go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Answer to `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    /// The generated password, shown once (absent when the request gave one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `PATCH /api/v1/users/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = tenant_role)]
    pub role: Option<TenantRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `true` forgets the failed sign-ins that locked the account.
    #[serde(default)]
    pub unlock: bool,
    /// `true` removes the user's TOTP (a lost device); they enrol again.
    #[serde(default)]
    pub reset_totp: bool,
    /// A new address for password reset links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `POST /api/v1/password`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangePasswordRequest { .. }")
    }
}

/// One of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub source: String,
    pub created: String,
    pub last_seen: String,
    /// The session making this request.
    pub current: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    /// Defaults to the caller's role; may not be above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = tenant_role)]
    pub role: Option<TenantRole>,
    /// 1 to 365; defaults to 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// An API token without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created: String,
    pub expires: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl From<&ApiTokenRecord> for TokenView {
    fn from(token: &ApiTokenRecord) -> Self {
        TokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            role: token.role.as_str().to_owned(),
            created: rfc3339(token.created_ms),
            expires: rfc3339(token.expires_ms),
            last_used: token.last_used_ms.map(rfc3339),
            revoked: token.revoked_ms.map(rfc3339),
        }
    }
}

/// Answer to `POST /api/v1/tokens`: the token is shown here once and stored only hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// `PUT /api/v1/tenant/admin-networks` and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminNetworks {
    /// CIDRs (or single addresses) admins must sign in from; empty means anywhere.
    pub cidrs: Vec<String>,
}

/// One row of the event log as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    /// RFC 3339 in the tenant's time zone.
    pub time: String,
    /// RFC 3339, UTC.
    pub time_utc: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub request_id: String,
}

/// What a check of every event chain found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainCheck {
    /// Whether every chain verified from its first row to its head.
    pub intact: bool,
    /// Chains checked (every tenant's log and the operator work log).
    pub chains: usize,
    pub events: usize,
    /// The first broken row, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A registered machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MachineView {
    pub id: String,
    pub name: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

impl From<&MachineRecord> for MachineView {
    fn from(machine: &MachineRecord) -> Self {
        MachineView {
            id: machine.id.to_string(),
            name: machine.name.clone(),
            created: rfc3339(machine.created_ms),
            revoked: machine.revoked_ms.map(rfc3339),
        }
    }
}

/// `GET /api/v1/operator/tenants/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub users: Vec<UserView>,
    pub machines: Vec<MachineView>,
    /// Present while the tenant is terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<TerminationView>,
}

/// A registration token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationTokenView {
    pub registration_token: String,
    /// RFC 3339, UTC.
    pub expires: String,
}

/// Answer to `POST /api/v1/operator/tenants`: the admin password and the registration
/// token are shown here once and stored only hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant_id: String,
    pub service_code: String,
    pub admin_login: String,
    pub admin_password: String,
    pub registration_token: String,
    pub registration_token_expires: String,
    pub tenant: TenantView,
}

/// `POST /api/v1/agents/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    pub token: String,
    /// The machine's name as shown in the portal (e.g. its host name).
    pub name: String,
}

/// Answer to a registration: the credential is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisteredAgent {
    pub machine_id: String,
    pub tenant_id: String,
    pub credential: String,
}

/// `GET /api/v1/agent/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentWhoAmI {
    pub tenant_id: String,
    pub machine_id: String,
}

/// Answer to `POST /api/v1/totp/enroll`: the secret, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// The same as an `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment { .. }")
    }
}

/// `POST /api/v1/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// Answer to a confirmed enrolment: single-use recovery codes, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodes { .. }")
    }
}

/// `GET`/`PUT /api/v1/tenant/totp-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpPolicyBody {
    /// `optional`, `admins` or `everyone`.
    #[schema(schema_with = totp_policy)]
    pub policy: TotpPolicy,
}
