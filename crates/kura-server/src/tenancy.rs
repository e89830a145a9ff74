//! Tenancy in one place: the identifiers of tenants and machines, and [`TenantScope`], the
//! only key that opens a tenant's data.
//!
//! A `TenantScope` can be made in exactly two ways, both in this crate: from an
//! authenticated principal (an agent credential today, tenant users later), or by an
//! authenticated operator for an operator route. Every [`crate::db::ServiceDb`] method that
//! reads or writes tenant data takes one and filters by it, so a handler that forgot to
//! authenticate has no way to reach tenant data.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use crate::auth::OperatorPrincipal;
use crate::secrets::random_hex;

/// A tenant's id: 32 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// A registered machine's id: 32 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MachineId(String);

macro_rules! hex_id {
    ($name:ident) => {
        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                $name(random_hex(16))
            }

            /// Accepts only the shape this service generates, so ids from URLs never carry
            /// surprises into queries or logs.
            pub fn parse(text: &str) -> Option<Self> {
                (text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| $name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from the database, where only generated ids are stored.
            pub(crate) fn from_db(text: String) -> Self {
                $name(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

hex_id!(TenantId);
hex_id!(MachineId);

/// Proof that the current request may act on one tenant's data. See the module docs for
/// who may construct one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: TenantId,
}

impl TenantScope {
    /// The scope of an operator route about one tenant. Taking the principal by reference
    /// means only a handler that authenticated an operator can call this.
    pub fn for_operator(_operator: &OperatorPrincipal, tenant_id: TenantId) -> Self {
        TenantScope { tenant_id }
    }

    /// The scope of a principal whose credential the database has just resolved to this
    /// tenant (agent credentials now; users and API tokens later).
    pub(crate) fn for_authenticated(tenant_id: TenantId) -> Self {
        TenantScope { tenant_id }
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
}

/// The private-gateway rule: a tenant with agent networks accepts agents only from inside
/// them. An unknown peer address never passes a non-empty list.
pub fn agent_network_allows(networks: &[IpNet], peer: Option<IpAddr>) -> bool {
    networks.is_empty() || peer.is_some_and(|ip| networks.iter().any(|net| net.contains(&ip)))
}
