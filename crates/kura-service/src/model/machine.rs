//! Machines registered by agents, and their credentials.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ids::{MachineId, TenantId};
use crate::model::TenantStatus;

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRecord {
    pub id: MachineId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A registration request, checked and about to be stored.
#[derive(Debug, Clone)]
pub struct NewMachine {
    pub registration_token_hash: String,
    pub machine_id: MachineId,
    pub name: String,
    pub credential_hash: String,
    /// The agent's address, checked against the tenant's agent networks.
    pub peer: Option<IpAddr>,
}

/// How a registration attempt ended. Only `Registered` changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutcome {
    Registered {
        tenant_id: TenantId,
        machine_id: MachineId,
    },
    UnknownToken,
    TokenExpired,
    TokenUsed,
    MachineLimitReached {
        max_machines: u32,
    },
    TenantNotActive(TenantStatus),
    PeerOutsideAgentNetworks,
}

/// Everything needed to authenticate and authorise an agent request, found from the hash
/// of its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub tenant_id: TenantId,
    pub machine_id: MachineId,
    pub credential_revoked: bool,
    pub tenant_status: TenantStatus,
    pub agent_networks: Vec<IpNet>,
}
