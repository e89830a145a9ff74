//! `kura-server`: the multi-tenant service around the vault engine.
//!
//! This crate owns the service side: configuration, the two TLS listeners (customer and
//! management) and their routers, authentication of operators, agents and tenant users,
//! roles ([`roles`]), the tamper-evident event log ([`audit`]), tenancy
//! ([`TenantScope`], the only way to reach a tenant's data), the service database
//! ([`db::ServiceDb`] on SQLite or PostgreSQL), tenant contracts, agent registration,
//! metrics, quickstart, and the operator command-line client.
//!
//! It must not know the stored formats beyond `kura-format`'s API, nor how the vault keeps
//! packs and chunks (that is `kura-store`'s). Customer data (vaults) and service data (this
//! crate's database) stay apart.

pub mod accounts;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod mail;
pub mod quickstart;
pub mod roles;
pub mod secrets;
pub mod tenancy;
pub mod tenants;
pub mod tls;
pub mod totp;
pub mod vaults;

pub use app::{AppState, Clock, RunningServer, Server, ServerError, ShutdownHandle};
pub use auth::{AgentPrincipal, OperatorPrincipal, UserPrincipal};
pub use config::ServerConfig;
pub use error::ApiError;
pub use tenancy::{MachineId, TenantId, TenantScope};
