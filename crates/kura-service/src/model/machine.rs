//! Machines registered by agents, and their credentials.

use std::net::IpAddr;

use ipnet::IpNet;
use kura_format::{Manifest, SnapshotKind};

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
    /// When its agent was last authenticated (to within [`LAST_SEEN_RESOLUTION_MS`]).
    pub last_seen_ms: Option<i64>,
}

/// How stale a machine's "last seen" may get before an agent request writes it again:
/// a write per request would queue every upload behind the database's write lock.
pub const LAST_SEEN_RESOLUTION_MS: i64 = 5 * 60 * 1000;

/// What the service knows of a snapshot without any key: the public part of its
/// manifest, kept beside its owner for the portal's machine and dashboard pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub time_ns: i64,
    pub kind: SnapshotKind,
    pub source: String,
    /// Logical bytes of the files (or the image) in the snapshot.
    pub bytes: u64,
    /// Stored bytes the run added to the vault.
    pub bytes_added: u64,
    /// Files that could not be read and are missing from the snapshot.
    pub errors: u64,
}

impl SnapshotFacts {
    pub fn of(manifest: &Manifest) -> Self {
        SnapshotFacts {
            time_ns: manifest.time_ns,
            kind: manifest.kind,
            source: manifest.source.clone(),
            bytes: manifest.stats.bytes,
            bytes_added: manifest.stats.bytes_added,
            errors: manifest.stats.errors,
        }
    }
}

/// The newest committed snapshot of one source of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestBackup {
    pub machine_id: MachineId,
    pub snapshot_id: String,
    pub facts: SnapshotFacts,
}

/// A machine's committed snapshots, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineActivity {
    pub snapshots: u64,
    /// Stored bytes its runs added (shared data counts for the machine that sent it first).
    pub bytes_added: u64,
    pub last_backup_ns: Option<i64>,
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
    pub last_seen_ms: Option<i64>,
    /// The tenant's time zone, which dates what the agent does (metering days).
    pub tenant_time_zone: String,
}
