//! Tenancy in one place: the identifiers of tenants and machines, and [`TenantScope`], the
//! only key that opens a tenant's data.
//!
//! A `TenantScope` can be made in exactly three ways, all in this crate: from an
//! authenticated principal (an agent credential, a tenant user's session, password or
//! API token); by an authenticated operator for an operator route about the tenant's
//! contract; and by an operator for the tenant's customer data, only while the tenant
//! grants support access ([`TenantScope::for_support`]). Every
//! [`crate::db::ServiceDb`] method that reads or writes tenant data takes one and filters
//! by it, so a handler that forgot to authenticate has no way to reach tenant data.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

use crate::auth::OperatorPrincipal;
use crate::db::TenantRecord;
use crate::secrets::random_hex;

/// A tenant's id: 32 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// A registered machine's id: 32 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MachineId(String);

/// A tenant user's id: 32 lowercase hex digits, random.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

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
hex_id!(UserId);

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

    /// The scope in which an operator may read a tenant's customer data (its vault):
    /// only while the tenant's admins grant support access. Operator routes that reach
    /// customer data must take their scope from here, not from [`Self::for_operator`].
    pub fn for_support(_operator: &OperatorPrincipal, tenant: &TenantRecord, now_ms: i64) -> Option<Self> {
        tenant
            .support_until_ms
            .is_some_and(|until| now_ms < until)
            .then(|| TenantScope {
                tenant_id: tenant.id.clone(),
            })
    }

    /// The scope of a principal whose credential the database has just resolved to this
    /// tenant: an agent credential, a user's session, password or API token. (A failed
    /// password still resolves the login to its tenant, whose log records the failure.)
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
