//! `kura-service`: every decision of the Kura service, without HTTP.
//!
//! It owns the domain operations ([`ops`]: tenants, accounts and sessions, users,
//! tokens, machines, support access, vaults, the event log), who may reach what
//! ([`authz`]: roles, [`authz::TenantScope`] and [`authz::ContractScope`], whose
//! constructors are private to it), the service database ([`db`]: one SQL text for
//! SQLite and PostgreSQL, one transaction per operation, one file per area), the event
//! catalogue and its hash chains ([`audit`]), the tenants' vaults ([`vaults`]), the job
//! kinds and their schedule ([`jobs`]), the mail outbox ([`mail`]) and the only source of
//! time ([`Clock`]). Each operation checks, changes, and records its event
//! in one transaction, and fails with a [`ServiceError`] whose kind the edge maps.
//!
//! It must not know HTTP, HTML, JSON routes, mail transport or templates: those are
//! `kura-server`'s, which calls these operations from the API, the portal, the console
//! and its jobs alike. It knows the vault engine only through `kura-store`'s API.

use std::sync::Arc;
use std::time::Duration;

pub mod audit;
pub mod authz;
mod clock;
pub mod db;
mod error;
pub mod ids;
pub mod jobs;
pub mod mail;
pub mod model;
pub mod ops;
pub mod secrets;
pub mod totp;
pub mod vaults;

pub use clock::{Clock, day_in_zone, duration_ms, minute_in_zone, rfc3339};
pub use error::{ErrorKind, Refusal, ServiceError, ServiceResult};

/// The rules the service runs by, from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an agent registration token stays valid.
    pub registration_token_ttl: Duration,
    /// Region label given to new tenants that do not name one.
    pub default_region: String,
    /// A portal session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A portal session ends this long after sign-in, however active.
    pub session_absolute_timeout: Duration,
    /// Failed sign-ins of one login ID after which each further attempt must wait,
    /// doubling from one second.
    pub login_throttle_after: u32,
    /// Failed sign-ins of one login ID after which it is locked for the period.
    pub login_lockout_after: u32,
    /// Failed sign-ins from one source address after which it is locked likewise.
    pub login_source_lockout_after: u32,
    /// The window in which failures count, and how long a lockout lasts.
    pub login_lockout_period: Duration,
    /// Whether the service can send mail (an SMTP server is configured).
    pub mail_enabled: bool,
    /// How often every tenant's vault is garbage-collected (zero: never by schedule).
    pub gc_interval: Duration,
    /// How often every tenant's vault is read back and repaired (zero: never).
    pub verify_interval: Duration,
    /// How often ended sessions, spent links and old records are deleted.
    pub expiry_interval: Duration,
    /// How often every tenant's usage is measured for its history (zero: never).
    pub meter_interval: Duration,
    /// How often the service's metadata is backed up (zero: never by schedule; only
    /// when the server has a [`jobs::MetadataBackupTask`]).
    pub metadata_backup_interval: Duration,
    /// Where operators may sign in and call from (empty: wherever the management
    /// listener can be reached).
    pub operator_networks: Vec<ipnet::IpNet>,
}

/// The service: its database, vaults, clock and rules. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub db: db::Db,
    pub vaults: Arc<vaults::TenantVaults>,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub mail: Arc<dyn mail::MailTransport>,
    /// Where users reach the customer listener, for links in mail (no trailing `/`).
    pub public_url: Arc<str>,
    /// Where operators reach the console, for links in their mail (no trailing `/`).
    pub console_url: Arc<str>,
    /// Seals the secrets the service must read back (TOTP secrets).
    pub key: Arc<secrets::ServiceKey>,
    /// Woken when a job or a mail is queued, so this server's job runner starts it
    /// without waiting for its next tick.
    pub work_queued: Arc<tokio::sync::Notify>,
    /// How this server backs up the service's metadata, when it is configured to.
    pub metadata_backup: Option<Arc<dyn jobs::MetadataBackupTask>>,
}

impl Service {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tells this server's job runner that work was queued.
    pub(crate) fn wake_runner(&self) {
        self.work_queued.notify_one();
    }
}
