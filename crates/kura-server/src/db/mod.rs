//! The service database: one trait, [`ServiceDb`], and two implementations, SQLite (the
//! embedded default) and PostgreSQL (scale-out). Both run the same SQL (`sql.rs`), so they
//! cannot drift apart; the test suite (`tests.rs`) runs against both.
//!
//! Tenant data is reached only through a [`TenantScope`]; service-wide operator queries
//! take the authenticated [`OperatorPrincipal`]. Authentication lookups (an agent
//! credential, a registration token) take only the hashed secret: they are how a scope is
//! obtained in the first place. Times are milliseconds since the Unix epoch, passed in by
//! the caller so tests can move the clock.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::auth::OperatorPrincipal;
use crate::tenancy::{MachineId, TenantId, TenantScope};

mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;

pub use postgres::PostgresServiceDb;
pub use sqlite::SqliteServiceDb;

/// What went wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique value (service code, login) is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Carries only the URL's scheme: the rest may hold a password.
    #[error("unsupported database URL scheme {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("{0} is too large to store")]
    OutOfRange(String),
    #[error("a stored value is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type DbResult<T> = Result<T, DbError>;

/// Whether a tenant may use the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    /// Locked out until resumed; data kept.
    Suspended,
    /// Locked out for good; data to be purged.
    Terminated,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Terminated => "terminated",
        }
    }
}

impl FromStr for TenantStatus {
    type Err = DbError;

    fn from_str(text: &str) -> DbResult<Self> {
        match text {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "terminated" => Ok(TenantStatus::Terminated),
            other => Err(DbError::Corrupt(format!("unknown tenant status {other:?}"))),
        }
    }
}

/// A tenant: one customer company and its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    /// The contract id, unique in the service.
    pub service_code: String,
    pub name: String,
    pub quota_bytes: u64,
    pub max_machines: u32,
    /// Where the tenant's data lives.
    pub region: String,
    pub encryption_required: bool,
    /// Days a snapshot cannot be deleted by people.
    pub immutable_days: u32,
    /// Networks agents must connect from; empty means anywhere.
    pub agent_networks: Vec<IpNet>,
    pub status: TenantStatus,
    /// IANA time zone in which the tenant sees times.
    pub time_zone: String,
    pub created_ms: i64,
}

/// A tenant about to be created.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub service_code: String,
    pub name: String,
    pub quota_bytes: u64,
    pub max_machines: u32,
    pub region: String,
    pub encryption_required: bool,
    pub immutable_days: u32,
    pub agent_networks: Vec<IpNet>,
    pub time_zone: String,
}

/// Changes to a tenant's contract; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub name: Option<String>,
    pub quota_bytes: Option<u64>,
    pub max_machines: Option<u32>,
    pub region: Option<String>,
    pub encryption_required: Option<bool>,
    pub immutable_days: Option<u32>,
    pub agent_networks: Option<Vec<IpNet>>,
    pub time_zone: Option<String>,
}

/// What a tenant user may do. Only the first admin exists so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRole {
    Admin,
}

impl TenantRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Admin => "admin",
        }
    }
}

impl FromStr for TenantRole {
    type Err = DbError;

    fn from_str(text: &str) -> DbResult<Self> {
        match text {
            "admin" => Ok(TenantRole::Admin),
            other => Err(DbError::Corrupt(format!("unknown tenant role {other:?}"))),
        }
    }
}

/// A person who signs in to the portal for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenantUser {
    /// Unique across the whole service.
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: TenantRole,
}

/// A tenant user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUserRecord {
    pub login: String,
    pub password_hash: String,
    pub role: TenantRole,
    pub created_ms: i64,
}

/// A machine registered by an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRecord {
    pub id: MachineId,
    pub tenant_id: TenantId,
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A registration request that has passed the HTTP layer.
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

/// An operator's API token as stored (without the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTokenRecord {
    pub id: String,
    /// Who or what the token was issued to.
    pub name: String,
}

/// The service's metadata store. See the module docs for the scoping rules.
#[async_trait]
pub trait ServiceDb: Send + Sync {
    /// `sqlite` or `postgres`, for logs and health output.
    fn backend(&self) -> &'static str;

    /// Number of operator tokens ever issued (revoked ones included).
    async fn count_operator_tokens(&self) -> DbResult<u64>;
    /// Stores a new operator token by its hash.
    async fn insert_operator_token(&self, name: &str, token_hash: &str, now_ms: i64) -> DbResult<()>;
    /// The unrevoked operator token with this hash, if any.
    async fn operator_token(&self, token_hash: &str) -> DbResult<Option<OperatorTokenRecord>>;

    /// Creates a tenant and its first admin in one transaction. A taken service code or
    /// login is a [`DbError::Conflict`].
    async fn create_tenant(
        &self,
        operator: &OperatorPrincipal,
        tenant: &NewTenant,
        admin: &NewTenantUser,
        now_ms: i64,
    ) -> DbResult<TenantRecord>;
    /// All tenants, by service code.
    async fn list_tenants(&self, operator: &OperatorPrincipal) -> DbResult<Vec<TenantRecord>>;
    /// The tenant with this service code, if any.
    async fn tenant_by_service_code(
        &self,
        operator: &OperatorPrincipal,
        service_code: &str,
    ) -> DbResult<Option<TenantRecord>>;

    /// The scoped tenant (`None` if the id names no tenant).
    async fn tenant(&self, scope: &TenantScope) -> DbResult<Option<TenantRecord>>;
    /// Applies `update`; returns the tenant as it is now.
    async fn update_tenant(
        &self,
        scope: &TenantScope,
        update: &TenantUpdate,
    ) -> DbResult<Option<TenantRecord>>;
    async fn set_tenant_status(
        &self,
        scope: &TenantScope,
        status: TenantStatus,
    ) -> DbResult<Option<TenantRecord>>;
    /// The tenant's portal users, by login.
    async fn tenant_users(&self, scope: &TenantScope) -> DbResult<Vec<TenantUserRecord>>;

    /// Stores a one-time agent registration token by its hash.
    async fn insert_registration_token(
        &self,
        scope: &TenantScope,
        token_hash: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> DbResult<()>;
    /// Whether the token exists for this tenant, is unused and has not expired.
    async fn registration_token_usable(
        &self,
        scope: &TenantScope,
        token_hash: &str,
        now_ms: i64,
    ) -> DbResult<bool>;
    /// Consumes a registration token and creates the machine and its credential, all or
    /// nothing, enforcing the token's validity, the tenant's status and its machine quota
    /// (counting unrevoked machines) even under concurrent registrations.
    async fn register_machine(&self, machine: &NewMachine, now_ms: i64) -> DbResult<RegistrationOutcome>;

    /// The agent holding the credential with this hash, revoked or not.
    async fn agent_by_credential(&self, credential_hash: &str) -> DbResult<Option<AgentIdentity>>;
    /// The tenant's machines, oldest first.
    async fn machines(&self, scope: &TenantScope) -> DbResult<Vec<MachineRecord>>;
    /// Revokes the machine and every credential it holds. `false` if the tenant has no such
    /// machine or it was already revoked.
    async fn revoke_machine(
        &self,
        scope: &TenantScope,
        machine_id: &MachineId,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// Notes that `machine` opened upload session `session_id` of the tenant's vault.
    async fn record_session(
        &self,
        scope: &TenantScope,
        session_id: &str,
        machine: &MachineId,
        now_ms: i64,
    ) -> DbResult<()>;
    /// The machine that opened the session, if the tenant has such a session.
    async fn session_machine(&self, scope: &TenantScope, session_id: &str) -> DbResult<Option<MachineId>>;
    /// Records `machine` as the owner of snapshot `snapshot_id` (hex). `true` when the
    /// snapshot is now this machine's (also when it already was), `false` when another
    /// machine of the tenant owns it.
    async fn claim_snapshot(
        &self,
        scope: &TenantScope,
        snapshot_id: &str,
        machine: &MachineId,
        now_ms: i64,
    ) -> DbResult<bool>;
    /// Ids (hex) of the snapshots the machine owns, including claims whose commit failed:
    /// callers intersect them with the vault's live snapshots.
    async fn machine_snapshots(&self, scope: &TenantScope, machine: &MachineId) -> DbResult<Vec<String>>;
}

/// Opens (creating if needed) and migrates the database at `url`.
pub async fn connect(url: &str) -> DbResult<Arc<dyn ServiceDb>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteServiceDb::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresServiceDb::connect(url).await?))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(DbError::UnsupportedUrl(scheme.to_owned()))
    }
}
