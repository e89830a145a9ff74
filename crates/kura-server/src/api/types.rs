//! Request and response bodies of the operator and agent APIs, shared by the handlers and
//! the `kura-server` command-line client. (They move to `kura-api` when the agent needs
//! them.)

use serde::{Deserialize, Serialize};

use crate::db::{MachineRecord, TenantRecord, TenantUserRecord};

/// `POST /api/v1/operator/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// `^[A-Z0-9][A-Z0-9-]{2,31}$`, unique.
    pub service_code: String,
    pub name: String,
    pub quota_bytes: u64,
    pub max_machines: u32,
    /// Defaults to the server's `default_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub encryption_required: bool,
    #[serde(default)]
    pub immutable_days: u32,
    /// CIDRs (or single addresses) agents must connect from; empty means anywhere.
    #[serde(default)]
    pub agent_networks: Vec<String>,
    /// IANA time zone; defaults to Asia/Tokyo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// `PATCH /api/v1/operator/tenants/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A tenant as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            created: rfc3339(tenant.created_ms),
        }
    }
}

/// A portal user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub login: String,
    pub role: String,
    pub created: String,
}

impl From<&TenantUserRecord> for UserView {
    fn from(user: &TenantUserRecord) -> Self {
        UserView {
            login: user.login.clone(),
            role: user.role.as_str().to_owned(),
            created: rfc3339(user.created_ms),
        }
    }
}

/// A registered machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantView,
    pub users: Vec<UserView>,
    pub machines: Vec<MachineView>,
}

/// A registration token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationTokenView {
    pub registration_token: String,
    /// RFC 3339, UTC.
    pub expires: String,
}

/// Answer to `POST /api/v1/operator/tenants`: the admin password and the registration
/// token are shown here once and stored only hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    pub token: String,
    /// The machine's name as shown in the portal (e.g. its host name).
    pub name: String,
}

/// Answer to a registration: the credential is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredAgent {
    pub machine_id: String,
    pub tenant_id: String,
    pub credential: String,
}

/// `GET /api/v1/agent/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentWhoAmI {
    pub tenant_id: String,
    pub machine_id: String,
}

/// Milliseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|timestamp| timestamp.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
