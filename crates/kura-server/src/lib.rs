//! `kura-server`: the process around the service.
//!
//! This crate owns configuration, the two TLS listeners (customer and management) and
//! their route tables, the JSON API (mapping [`kura_service::ServiceError`] to HTTP in
//! one place, [`ApiError`]), the extractors that turn credentials into the service's
//! principals, the customer portal and the operator console (server-rendered pages in
//! Japanese and English, from the same service operations as the API), the SMTP
//! transport, metrics, quickstart and the operator command-line client.
//!
//! It must not know SQL or the service's rules: every decision is a `kura-service`
//! operation, which the API, the portal, the console and jobs call alike. It
//! knows the stored formats only through `kura-format`'s and `kura-store`'s APIs.

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod console;
pub mod doctor;
mod drain;
pub mod error;
mod host;
pub mod jobs;
pub mod mail;
pub mod metadata;
pub mod portal;
pub mod quickstart;
pub mod tls;
pub mod web;

pub use app::{AppState, RunningServer, Server, ServerError, ShutdownHandle};
pub use config::ServerConfig;
pub use error::ApiError;
pub use kura_service::{Clock, secrets, totp};

/// Roles as the API names them (re-exported for the command-line client and tests).
pub mod roles {
    pub use kura_service::authz::{Permission, ProviderRole, TenantRole};
}
