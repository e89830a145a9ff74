//! The service database: one trait, [`ServiceDb`], and two implementations, SQLite (the
//! embedded default) and PostgreSQL (scale-out). Both run the same SQL (`sql.rs`), so they
//! cannot drift apart; the test suite (`tests.rs`) runs against both.
//!
//! Tenant data is reached only through a [`TenantScope`]; service-wide operator queries
//! take the authenticated [`OperatorPrincipal`]. Authentication lookups (an agent
//! credential, a registration token) take only the hashed secret: they are how a scope is
//! obtained in the first place. Times are milliseconds since the Unix epoch, passed in by
//! the caller so tests can move the clock.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::auth::OperatorPrincipal;
pub use crate::roles::{ProviderRole, TenantRole};
use crate::tenancy::{MachineId, TenantId, TenantScope, UserId};
pub use crate::totp::TotpPolicy;

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
    /// Networks admins must sign in (or use admin API tokens) from; empty means anywhere.
    pub admin_networks: Vec<IpNet>,
    /// Who must use TOTP.
    pub totp_policy: TotpPolicy,
    /// Until when the tenant's admins let operators see its data.
    pub support_until_ms: Option<i64>,
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
    pub admin_networks: Option<Vec<IpNet>>,
    pub totp_policy: Option<TotpPolicy>,
    pub time_zone: Option<String>,
}

impl FromStr for TenantRole {
    type Err = DbError;

    fn from_str(text: &str) -> DbResult<Self> {
        TenantRole::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown tenant role {text:?}")))
    }
}

impl FromStr for TotpPolicy {
    type Err = DbError;

    fn from_str(text: &str) -> DbResult<Self> {
        TotpPolicy::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown TOTP policy {text:?}")))
    }
}

impl FromStr for ProviderRole {
    type Err = DbError;

    fn from_str(text: &str) -> DbResult<Self> {
        ProviderRole::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown provider role {text:?}")))
    }
}

/// A person who signs in to the portal for a tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTenantUser {
    /// Unique across the whole service.
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: TenantRole,
    /// Where password reset links go.
    pub email: Option<String>,
}

impl fmt::Debug for NewTenantUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTenantUser")
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A tenant user as stored, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUserRecord {
    pub id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub disabled_ms: Option<i64>,
    pub created_ms: i64,
    pub totp_enrolled: bool,
    pub email: Option<String>,
}

/// Changes to a user; `None` keeps the current value. Disabling revokes the user's
/// sessions and API tokens.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<TenantRole>,
    pub disabled: Option<bool>,
    pub email: Option<String>,
}

/// What a login attempt is checked against, found by the login ID.
#[derive(Clone)]
pub struct LoginCandidate {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: TenantRole,
    pub disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    /// The active TOTP secret (base32), if enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub totp_policy: TotpPolicy,
    /// Where password reset links go.
    pub email: Option<String>,
}

impl fmt::Debug for LoginCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Failed logins inside a time window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub by_login: u32,
    pub last_by_login_ms: Option<i64>,
    pub by_source: u32,
    pub last_by_source_ms: Option<i64>,
}

/// A portal session about to be stored; the secrets only as hashes.
#[derive(Debug, Clone)]
pub struct NewUserSession {
    pub id: String,
    pub user_id: UserId,
    pub session_hash: String,
    pub csrf_hash: String,
    pub source: String,
}

/// Who holds a session cookie, found by the cookie's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    pub session_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub csrf_hash: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked: bool,
    pub user_disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    pub totp_enrolled: bool,
    pub totp_policy: TotpPolicy,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSessionRecord {
    pub id: String,
    pub source: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// An API token about to be stored (by its hash).
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub role: TenantRole,
    pub token_hash: String,
    pub expires_ms: i64,
}

/// Who holds an API token, found by the token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenIdentity {
    pub token_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub user_role: TenantRole,
    pub token_role: TenantRole,
    pub expires_ms: i64,
    pub revoked: bool,
    pub user_disabled: bool,
    pub tenant_status: TenantStatus,
    pub admin_networks: Vec<IpNet>,
    pub totp_enrolled: bool,
    pub totp_policy: TotpPolicy,
}

/// A user's TOTP state.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TotpState {
    /// The active secret (base32).
    pub secret: Option<String>,
    /// A secret handed out for enrolment, not yet confirmed with a code.
    pub pending: Option<String>,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

impl fmt::Debug for TotpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpState")
            .field("enrolled", &self.secret.is_some())
            .field("pending", &self.pending.is_some())
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// An API token as its owner sees it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub role: TenantRole,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// Which hash chain of the event log an event joins. Appending needs no principal
/// (recording is not reading), but a tenant's chain is still named by its scope.
#[derive(Debug, Clone, Copy)]
pub enum EventChain<'a> {
    /// The tenant's own log, which its admins and auditors export.
    Tenant(&'a TenantScope),
    /// The operator work log, which also records service-wide events such as sign-in
    /// attempts for unknown login IDs.
    Operators,
}

/// The name of the operator work log's chain; a tenant's chain is named by its id.
pub const OPERATOR_CHAIN: &str = "operators";

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub time_ms: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub request_id: String,
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub chain: String,
    pub seq: i64,
    pub tenant_id: Option<String>,
    pub event: NewEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The newest link of a chain, kept apart from the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: String,
    pub last_seq: i64,
    pub head_hash: String,
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
    pub role: ProviderRole,
}

/// The service's metadata store. See the module docs for the scoping rules.
#[async_trait]
pub trait ServiceDb: Send + Sync {
    /// `sqlite` or `postgres`, for logs and health output.
    fn backend(&self) -> &'static str;

    /// Number of operator tokens ever issued (revoked ones included).
    async fn count_operator_tokens(&self) -> DbResult<u64>;
    /// Stores a new operator token by its hash.
    async fn insert_operator_token(
        &self,
        name: &str,
        role: ProviderRole,
        token_hash: &str,
        now_ms: i64,
    ) -> DbResult<()>;
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
    /// Grants support access until `until_ms`, or withdraws it (`None`).
    async fn set_support_access(
        &self,
        scope: &TenantScope,
        until_ms: Option<i64>,
    ) -> DbResult<Option<TenantRecord>>;
    /// The tenant's portal users, by login.
    async fn tenant_users(&self, scope: &TenantScope) -> DbResult<Vec<TenantUserRecord>>;
    /// Adds a user; a login taken anywhere in the service is a [`DbError::Conflict`].
    async fn create_user(
        &self,
        scope: &TenantScope,
        user: &NewTenantUser,
        now_ms: i64,
    ) -> DbResult<TenantUserRecord>;
    /// Applies `update`; disabling also revokes the user's sessions and API tokens.
    async fn update_user(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        update: &UserUpdate,
        now_ms: i64,
    ) -> DbResult<Option<TenantUserRecord>>;
    /// Deletes the user with their sessions and API tokens. `false` if there is no such user.
    async fn delete_user(&self, scope: &TenantScope, user_id: &UserId) -> DbResult<bool>;
    /// Replaces the user's password hash and revokes every session and API token of the
    /// user except the session `keep_session` (the one changing its own password).
    async fn set_password(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        password_hash: &str,
        keep_session: Option<&str>,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// The user's TOTP state.
    async fn totp_state(&self, scope: &TenantScope, user_id: &UserId) -> DbResult<TotpState>;
    /// Sets (or clears) the secret being enrolled.
    async fn set_totp_pending(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        secret: Option<&str>,
    ) -> DbResult<()>;
    /// Makes the pending secret active as of `step` and replaces the recovery codes
    /// (stored by hash). `false` if nothing was pending.
    async fn activate_totp(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        step: i64,
        recovery_code_hashes: &[String],
    ) -> DbResult<bool>;
    /// Removes TOTP and the recovery codes from the user.
    async fn disable_totp(&self, scope: &TenantScope, user_id: &UserId) -> DbResult<bool>;
    /// Records that a code for `step` was used; `false` if that step (or a later one) was
    /// used already, so each code works once even under concurrent sign-ins.
    async fn use_totp_step(&self, scope: &TenantScope, user_id: &UserId, step: i64) -> DbResult<bool>;
    /// Consumes an unused recovery code with this hash; `false` if there is none.
    async fn use_recovery_code(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        code_hash: &str,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// Stores a password reset link (by its hash) for a user.
    async fn create_password_reset(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        token_hash: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> DbResult<()>;
    /// How many reset links the user was sent since `since_ms`.
    async fn password_resets_since(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        since_ms: i64,
    ) -> DbResult<u32>;
    /// The user an unused, unexpired reset link belongs to, with their login ID.
    async fn password_reset_user(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> DbResult<Option<(TenantId, UserId, String)>>;
    /// Uses up a reset link; `false` if it was used (or expired) meanwhile.
    async fn consume_password_reset(
        &self,
        scope: &TenantScope,
        token_hash: &str,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// The user with this login ID, for checking a login attempt.
    async fn login_candidate(&self, login: &str) -> DbResult<Option<LoginCandidate>>;
    /// Notes a failed login of `login` (as typed) from `source`.
    async fn record_login_failure(&self, login: &str, source: &str, now_ms: i64) -> DbResult<()>;
    /// Failed logins of `login` and from `source` since `since_ms`.
    async fn login_failures(&self, login: &str, source: &str, since_ms: i64) -> DbResult<LoginFailures>;
    /// Forgets the failed logins of `login` (after a successful login or an admin unlock).
    async fn clear_login_failures(&self, login: &str) -> DbResult<()>;

    /// Stores a new portal session of a user of the scoped tenant.
    async fn create_user_session(
        &self,
        scope: &TenantScope,
        session: &NewUserSession,
        now_ms: i64,
    ) -> DbResult<()>;
    /// The session whose cookie has this hash, revoked or not.
    async fn session_identity(&self, session_hash: &str) -> DbResult<Option<SessionIdentity>>;
    /// Records activity on a session (for the idle timeout).
    async fn touch_user_session(&self, scope: &TenantScope, session_id: &str, now_ms: i64) -> DbResult<()>;
    /// The user's sessions, newest first.
    async fn user_sessions(&self, scope: &TenantScope, user_id: &UserId) -> DbResult<Vec<UserSessionRecord>>;
    /// Revokes one of the user's sessions. `false` if there is no such live session.
    async fn revoke_user_session(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        session_id: &str,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// Stores a new API token of a user of the scoped tenant.
    async fn create_api_token(&self, scope: &TenantScope, token: &NewApiToken, now_ms: i64) -> DbResult<()>;
    /// The API token with this hash, revoked or expired or not.
    async fn api_token_identity(&self, token_hash: &str) -> DbResult<Option<ApiTokenIdentity>>;
    /// Records a use of the token.
    async fn touch_api_token(&self, scope: &TenantScope, token_id: &str, now_ms: i64) -> DbResult<()>;
    /// The user's API tokens (`None`: every user's), newest first.
    async fn api_tokens(
        &self,
        scope: &TenantScope,
        user_id: Option<&UserId>,
    ) -> DbResult<Vec<ApiTokenRecord>>;
    /// Revokes a token of the user (`None`: of any user of the tenant). `false` if there is
    /// no such live token.
    async fn revoke_api_token(
        &self,
        scope: &TenantScope,
        user_id: Option<&UserId>,
        token_id: &str,
        now_ms: i64,
    ) -> DbResult<bool>;

    /// Appends an event to a chain of the event log, linking it to the chain's last one.
    async fn append_event(&self, chain: EventChain<'_>, event: &NewEvent) -> DbResult<()>;
    /// The tenant's events with `from_ms <= time < to_ms`, oldest first.
    async fn events(&self, scope: &TenantScope, from_ms: i64, to_ms: i64) -> DbResult<Vec<EventRecord>>;
    /// Every event of every chain, by chain and sequence number, for `audit verify`.
    async fn all_events(&self) -> DbResult<Vec<EventRecord>>;
    /// The head of every chain.
    async fn chain_heads(&self) -> DbResult<Vec<ChainHead>>;

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
