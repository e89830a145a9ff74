//! The engine on the customer's side: everything `kura` does with a vault.
//!
//! It owns the [`Repository`] trait — the byte-level operations a vault offers, with
//! [`LocalRepository`] (a vault in a local directory, in-process) and [`RemoteRepository`]
//! (the tenant's vault on `kura-server`, over HTTPS) as its implementations — and, above it, the
//! work that needs the vault key and the file system: unlocking ([`OpenVault`]), the file
//! backup pipeline ([`backup`]), image snapshots ([`image`]), restore ([`restore`]), browsing trees ([`browse`]),
//! speed measurement ([`speed`]) and the daemon that runs protection plans ([`daemon`]).
//! Retention policies are `kura_store::retention`: the server applies them too.
//!
//! It must not know server internals: users, tenants and HTTP routing live elsewhere.

pub mod backup;
pub mod browse;
pub mod daemon;
mod error;
pub mod hooks;
pub mod image;
mod open;
mod promise;
mod remote;
mod repository;
pub mod restore;
pub mod speed;
pub mod upload_limit;

pub use error::AgentError;
pub use open::{OpenVault, init_vault, machine_key_slot};
pub use remote::{RemoteRepository, ServerConnection, register};
pub use repository::{LocalRepository, Repository};

/// Result type of this crate.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
