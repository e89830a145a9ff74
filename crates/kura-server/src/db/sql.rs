//! The SQL of [`ServiceDb`](super::ServiceDb), written once for both backends.
//!
//! SQLite and PostgreSQL accept the same statements here (`$n` parameters, `RETURNING`,
//! `BIGINT` milliseconds, `BOOLEAN`), so one macro implements the trait for both pool
//! types and the backends cannot drift apart. The single difference is how
//! `register_machine` serialises concurrent registrations of one tenant: PostgreSQL locks
//! the tenant row (`FOR UPDATE`); SQLite needs no lock statement because the transaction
//! writes first, which takes SQLite's single write lock before anything is counted.

use ipnet::IpNet;

use super::{
    AgentIdentity, ApiTokenIdentity, ApiTokenRecord, DbError, DbResult, EventRecord, LoginCandidate,
    MachineRecord, NewEvent, OperatorTokenRecord, SessionIdentity, TenantRecord, TenantUserRecord,
    UserSessionRecord,
};
use crate::tenancy::{MachineId, TenantId, UserId};

/// The columns of `tenants`, in the order of [`TenantRow`].
macro_rules! tenant_columns {
    () => {
        "id, service_code, name, quota_bytes, max_machines, region, encryption_required, immutable_days, \
         agent_networks, status, time_zone, created_ms, admin_networks, totp_policy, support_until_ms"
    };
}
pub(super) use tenant_columns;

#[derive(sqlx::FromRow)]
pub(super) struct TenantRow {
    id: String,
    service_code: String,
    name: String,
    quota_bytes: i64,
    max_machines: i64,
    region: String,
    encryption_required: bool,
    immutable_days: i64,
    agent_networks: String,
    status: String,
    time_zone: String,
    created_ms: i64,
    admin_networks: String,
    totp_policy: String,
    support_until_ms: Option<i64>,
}

impl TenantRow {
    pub(super) fn into_record(self) -> DbResult<TenantRecord> {
        Ok(TenantRecord {
            id: TenantId::from_db(self.id),
            service_code: self.service_code,
            name: self.name,
            quota_bytes: from_db_int(self.quota_bytes, "quota_bytes")?,
            max_machines: from_db_int(self.max_machines, "max_machines")?,
            region: self.region,
            encryption_required: self.encryption_required,
            immutable_days: from_db_int(self.immutable_days, "immutable_days")?,
            agent_networks: networks_from_db(&self.agent_networks)?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_policy: self.totp_policy.parse()?,
            support_until_ms: self.support_until_ms,
            status: self.status.parse()?,
            time_zone: self.time_zone,
            created_ms: self.created_ms,
        })
    }
}

/// The columns of `tenant_users` in the order of [`TenantUserRow`].
macro_rules! user_columns {
    () => {
        "id, login, role, disabled_ms, created_ms, totp_secret IS NOT NULL AS totp_enrolled, email"
    };
}
pub(super) use user_columns;

#[derive(sqlx::FromRow)]
pub(super) struct TenantUserRow {
    id: String,
    login: String,
    role: String,
    disabled_ms: Option<i64>,
    created_ms: i64,
    totp_enrolled: bool,
    email: Option<String>,
}

impl TenantUserRow {
    pub(super) fn into_record(self) -> DbResult<TenantUserRecord> {
        Ok(TenantUserRecord {
            id: UserId::from_db(self.id),
            login: self.login,
            role: self.role.parse()?,
            disabled_ms: self.disabled_ms,
            created_ms: self.created_ms,
            totp_enrolled: self.totp_enrolled,
            email: self.email,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct LoginCandidateRow {
    tenant_id: String,
    id: String,
    login: String,
    password_hash: String,
    role: String,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
    totp_policy: String,
    email: Option<String>,
}

impl LoginCandidateRow {
    pub(super) fn into_candidate(self) -> DbResult<LoginCandidate> {
        Ok(LoginCandidate {
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.id),
            login: self.login,
            password_hash: self.password_hash,
            role: self.role.parse()?,
            disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_secret: self.totp_secret,
            totp_last_step: self.totp_last_step,
            totp_policy: self.totp_policy.parse()?,
            email: self.email,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionIdentityRow {
    id: String,
    tenant_id: String,
    user_id: String,
    login: String,
    role: String,
    csrf_hash: String,
    created_ms: i64,
    last_seen_ms: i64,
    revoked_ms: Option<i64>,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_enrolled: bool,
    totp_policy: String,
}

impl SessionIdentityRow {
    pub(super) fn into_identity(self) -> DbResult<SessionIdentity> {
        Ok(SessionIdentity {
            session_id: self.id,
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.user_id),
            login: self.login,
            role: self.role.parse()?,
            csrf_hash: self.csrf_hash,
            created_ms: self.created_ms,
            last_seen_ms: self.last_seen_ms,
            revoked: self.revoked_ms.is_some(),
            user_disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_enrolled: self.totp_enrolled,
            totp_policy: self.totp_policy.parse()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserSessionRow {
    id: String,
    source: String,
    created_ms: i64,
    last_seen_ms: i64,
    revoked_ms: Option<i64>,
}

impl UserSessionRow {
    pub(super) fn into_record(self) -> UserSessionRecord {
        UserSessionRecord {
            id: self.id,
            source: self.source,
            created_ms: self.created_ms,
            last_seen_ms: self.last_seen_ms,
            revoked_ms: self.revoked_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiTokenIdentityRow {
    id: String,
    tenant_id: String,
    user_id: String,
    login: String,
    user_role: String,
    token_role: String,
    expires_ms: i64,
    revoked_ms: Option<i64>,
    disabled_ms: Option<i64>,
    status: String,
    admin_networks: String,
    totp_enrolled: bool,
    totp_policy: String,
}

impl ApiTokenIdentityRow {
    pub(super) fn into_identity(self) -> DbResult<ApiTokenIdentity> {
        Ok(ApiTokenIdentity {
            token_id: self.id,
            tenant_id: TenantId::from_db(self.tenant_id),
            user_id: UserId::from_db(self.user_id),
            login: self.login,
            user_role: self.user_role.parse()?,
            token_role: self.token_role.parse()?,
            expires_ms: self.expires_ms,
            revoked: self.revoked_ms.is_some(),
            user_disabled: self.disabled_ms.is_some(),
            tenant_status: self.status.parse()?,
            admin_networks: networks_from_db(&self.admin_networks)?,
            totp_enrolled: self.totp_enrolled,
            totp_policy: self.totp_policy.parse()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiTokenRow {
    id: String,
    user_id: String,
    name: String,
    role: String,
    created_ms: i64,
    expires_ms: i64,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

impl ApiTokenRow {
    pub(super) fn into_record(self) -> DbResult<ApiTokenRecord> {
        Ok(ApiTokenRecord {
            id: self.id,
            user_id: UserId::from_db(self.user_id),
            name: self.name,
            role: self.role.parse()?,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            revoked_ms: self.revoked_ms,
        })
    }
}

/// The columns of `events` in the order of [`EventRow`].
macro_rules! event_columns {
    () => {
        "chain, seq, tenant_id, time_ms, actor, source, action, target, result, request_id, prev_hash, hash"
    };
}
pub(super) use event_columns;

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    chain: String,
    seq: i64,
    tenant_id: Option<String>,
    time_ms: i64,
    actor: String,
    source: String,
    action: String,
    target: String,
    result: String,
    request_id: String,
    prev_hash: String,
    hash: String,
}

impl EventRow {
    pub(super) fn into_record(self) -> EventRecord {
        EventRecord {
            chain: self.chain,
            seq: self.seq,
            tenant_id: self.tenant_id,
            event: NewEvent {
                time_ms: self.time_ms,
                actor: self.actor,
                source: self.source,
                action: self.action,
                target: self.target,
                result: self.result,
                request_id: self.request_id,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Counts rows as `u32`, saturating.
pub(super) fn count_u32(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[derive(sqlx::FromRow)]
pub(super) struct MachineRow {
    id: String,
    tenant_id: String,
    name: String,
    created_ms: i64,
    revoked_ms: Option<i64>,
}

impl MachineRow {
    pub(super) fn into_record(self) -> MachineRecord {
        MachineRecord {
            id: MachineId::from_db(self.id),
            tenant_id: TenantId::from_db(self.tenant_id),
            name: self.name,
            created_ms: self.created_ms,
            revoked_ms: self.revoked_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AgentRow {
    tenant_id: String,
    machine_id: String,
    revoked_ms: Option<i64>,
    status: String,
    agent_networks: String,
}

impl AgentRow {
    pub(super) fn into_identity(self) -> DbResult<AgentIdentity> {
        Ok(AgentIdentity {
            tenant_id: TenantId::from_db(self.tenant_id),
            machine_id: MachineId::from_db(self.machine_id),
            credential_revoked: self.revoked_ms.is_some(),
            tenant_status: self.status.parse()?,
            agent_networks: networks_from_db(&self.agent_networks)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OperatorTokenRow {
    id: String,
    name: String,
    role: String,
}

impl OperatorTokenRow {
    pub(super) fn into_record(self) -> DbResult<OperatorTokenRecord> {
        Ok(OperatorTokenRecord {
            id: self.id,
            name: self.name,
            role: self.role.parse()?,
        })
    }
}

/// Unsigned API values are stored as `BIGINT`, which both databases have.
pub(super) fn to_db_int(value: impl Into<u64>, what: &str) -> DbResult<i64> {
    i64::try_from(value.into()).map_err(|_| DbError::OutOfRange(what.to_owned()))
}

fn from_db_int<T: TryFrom<i64>>(value: i64, what: &str) -> DbResult<T> {
    T::try_from(value).map_err(|_| DbError::Corrupt(format!("{what} = {value} is out of range")))
}

/// Networks are stored as a JSON array of CIDR strings: portable, and readable in a dump.
pub(super) fn networks_to_db(networks: &[IpNet]) -> String {
    let texts: Vec<String> = networks.iter().map(IpNet::to_string).collect();
    serde_json::Value::from(texts).to_string()
}

pub(super) fn networks_from_db(text: &str) -> DbResult<Vec<IpNet>> {
    let texts: Vec<String> = serde_json::from_str(text)
        .map_err(|err| DbError::Corrupt(format!("agent_networks {text:?}: {err}")))?;
    texts
        .iter()
        .map(|net| {
            net.parse()
                .map_err(|err| DbError::Corrupt(format!("agent network {net:?}: {err}")))
        })
        .collect()
}

/// Turns a unique-key violation into [`DbError::Conflict`], naming what was taken.
pub(super) fn map_unique_violation(err: sqlx::Error, service_code: &str, login: &str) -> DbError {
    match err.as_database_error() {
        Some(db_err) if db_err.is_unique_violation() => {
            if db_err.message().contains("service_code") {
                DbError::Conflict(format!("service code {service_code} is already in use"))
            } else if db_err.message().contains("login") {
                DbError::Conflict(format!("login {login} is already in use"))
            } else {
                DbError::Conflict(db_err.message().to_owned())
            }
        }
        _ => DbError::Sqlx(err),
    }
}

/// Implements `ServiceDb` for `$db_type`, a struct with a `pool: sqlx::Pool<_>` field.
macro_rules! impl_service_db {
    ($db_type:ty, backend = $backend:literal, lock_tenant = $lock_tenant:literal) => {
        #[async_trait::async_trait]
        impl $crate::db::ServiceDb for $db_type {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn count_operator_tokens(&self) -> $crate::db::DbResult<u64> {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count.unsigned_abs())
            }

            async fn insert_operator_token(
                &self,
                name: &str,
                role: $crate::db::ProviderRole,
                token_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO operator_tokens (id, name, token_hash, created_ms, role) VALUES ($1, $2, $3, $4, $5)",
                )
                    .bind($crate::secrets::random_hex(16))
                    .bind(name)
                    .bind(token_hash)
                    .bind(now_ms)
                    .bind(role.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn operator_token(
                &self,
                token_hash: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::OperatorTokenRecord>> {
                let row: Option<$crate::db::sql::OperatorTokenRow> = sqlx::query_as(
                    "SELECT id, name, role FROM operator_tokens WHERE token_hash = $1 AND revoked_ms IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::OperatorTokenRow::into_record).transpose()
            }

            async fn create_tenant(
                &self,
                _operator: &$crate::auth::OperatorPrincipal,
                tenant: &$crate::db::NewTenant,
                admin: &$crate::db::NewTenantUser,
                now_ms: i64,
            ) -> $crate::db::DbResult<$crate::db::TenantRecord> {
                use $crate::db::sql::{map_unique_violation, networks_to_db, to_db_int};
                let conflict = |err| map_unique_violation(err, &tenant.service_code, &admin.login);
                let mut tx = self.pool.begin().await?;
                let row: $crate::db::sql::TenantRow = sqlx::query_as(concat!(
                    "INSERT INTO tenants (",
                    $crate::db::sql::tenant_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, '[]', 'optional', NULL) RETURNING ",
                    $crate::db::sql::tenant_columns!()
                ))
                .bind(tenant.id.as_str())
                .bind(&tenant.service_code)
                .bind(&tenant.name)
                .bind(to_db_int(tenant.quota_bytes, "quota_bytes")?)
                .bind(i64::from(tenant.max_machines))
                .bind(&tenant.region)
                .bind(tenant.encryption_required)
                .bind(i64::from(tenant.immutable_days))
                .bind(networks_to_db(&tenant.agent_networks))
                .bind(&tenant.time_zone)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict)?;
                sqlx::query(
                    "INSERT INTO tenant_users (id, tenant_id, login, password_hash, role, created_ms, email) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind($crate::secrets::random_hex(16))
                .bind(tenant.id.as_str())
                .bind(&admin.login)
                .bind(&admin.password_hash)
                .bind(admin.role.as_str())
                .bind(now_ms)
                .bind(admin.email.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(conflict)?;
                tx.commit().await?;
                row.into_record()
            }

            async fn list_tenants(
                &self,
                _operator: &$crate::auth::OperatorPrincipal,
            ) -> $crate::db::DbResult<Vec<$crate::db::TenantRecord>> {
                let rows: Vec<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::tenant_columns!(),
                    " FROM tenants ORDER BY service_code"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::db::sql::TenantRow::into_record).collect()
            }

            async fn tenant_by_service_code(
                &self,
                _operator: &$crate::auth::OperatorPrincipal,
                service_code: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantRecord>> {
                let row: Option<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::tenant_columns!(),
                    " FROM tenants WHERE service_code = $1"
                ))
                .bind(service_code)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::TenantRow::into_record).transpose()
            }

            async fn tenant(
                &self,
                scope: &$crate::tenancy::TenantScope,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantRecord>> {
                let row: Option<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::tenant_columns!(),
                    " FROM tenants WHERE id = $1"
                ))
                .bind(scope.tenant_id().as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::TenantRow::into_record).transpose()
            }

            async fn update_tenant(
                &self,
                scope: &$crate::tenancy::TenantScope,
                update: &$crate::db::TenantUpdate,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantRecord>> {
                use $crate::db::sql::{networks_to_db, to_db_int};
                let quota_bytes = update.quota_bytes.map(|q| to_db_int(q, "quota_bytes")).transpose()?;
                let row: Option<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "UPDATE tenants SET name = COALESCE($2, name), quota_bytes = COALESCE($3, quota_bytes), \
                     max_machines = COALESCE($4, max_machines), region = COALESCE($5, region), \
                     encryption_required = COALESCE($6, encryption_required), \
                     immutable_days = COALESCE($7, immutable_days), \
                     agent_networks = COALESCE($8, agent_networks), time_zone = COALESCE($9, time_zone), \
                     admin_networks = COALESCE($10, admin_networks), totp_policy = COALESCE($11, totp_policy) \
                     WHERE id = $1 RETURNING ",
                    $crate::db::sql::tenant_columns!()
                ))
                .bind(scope.tenant_id().as_str())
                .bind(update.name.as_deref())
                .bind(quota_bytes)
                .bind(update.max_machines.map(i64::from))
                .bind(update.region.as_deref())
                .bind(update.encryption_required)
                .bind(update.immutable_days.map(i64::from))
                .bind(update.agent_networks.as_deref().map(networks_to_db))
                .bind(update.time_zone.as_deref())
                .bind(update.admin_networks.as_deref().map(networks_to_db))
                .bind(update.totp_policy.map($crate::db::TotpPolicy::as_str))
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::TenantRow::into_record).transpose()
            }

            async fn set_tenant_status(
                &self,
                scope: &$crate::tenancy::TenantScope,
                status: $crate::db::TenantStatus,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantRecord>> {
                let row: Option<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "UPDATE tenants SET status = $2 WHERE id = $1 RETURNING ",
                    $crate::db::sql::tenant_columns!()
                ))
                .bind(scope.tenant_id().as_str())
                .bind(status.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::TenantRow::into_record).transpose()
            }

            async fn set_support_access(
                &self,
                scope: &$crate::tenancy::TenantScope,
                until_ms: Option<i64>,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantRecord>> {
                let row: Option<$crate::db::sql::TenantRow> = sqlx::query_as(concat!(
                    "UPDATE tenants SET support_until_ms = $2 WHERE id = $1 RETURNING ",
                    $crate::db::sql::tenant_columns!()
                ))
                .bind(scope.tenant_id().as_str())
                .bind(until_ms)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::TenantRow::into_record).transpose()
            }

            async fn tenant_users(
                &self,
                scope: &$crate::tenancy::TenantScope,
            ) -> $crate::db::DbResult<Vec<$crate::db::TenantUserRecord>> {
                let rows: Vec<$crate::db::sql::TenantUserRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::user_columns!(),
                    " FROM tenant_users WHERE tenant_id = $1 ORDER BY login"
                ))
                .bind(scope.tenant_id().as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::db::sql::TenantUserRow::into_record).collect()
            }

            async fn create_user(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user: &$crate::db::NewTenantUser,
                now_ms: i64,
            ) -> $crate::db::DbResult<$crate::db::TenantUserRecord> {
                let row: $crate::db::sql::TenantUserRow = sqlx::query_as(concat!(
                    "INSERT INTO tenant_users (id, tenant_id, login, password_hash, role, created_ms, email) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                    $crate::db::sql::user_columns!()
                ))
                .bind($crate::tenancy::UserId::generate().as_str())
                .bind(scope.tenant_id().as_str())
                .bind(&user.login)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(now_ms)
                .bind(user.email.as_deref())
                .fetch_one(&self.pool)
                .await
                .map_err(|err| $crate::db::sql::map_unique_violation(err, "", &user.login))?;
                row.into_record()
            }

            async fn update_user(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                update: &$crate::db::UserUpdate,
                now_ms: i64,
            ) -> $crate::db::DbResult<Option<$crate::db::TenantUserRecord>> {
                let mut tx = self.pool.begin().await?;
                let disabled_ms = match update.disabled {
                    None => None,
                    Some(true) => Some(Some(now_ms)),
                    Some(false) => Some(None),
                };
                let row: Option<$crate::db::sql::TenantUserRow> = sqlx::query_as(concat!(
                    "UPDATE tenant_users SET role = COALESCE($3, role), \
                     disabled_ms = CASE WHEN $4 THEN $5 ELSE disabled_ms END, email = COALESCE($6, email) \
                     WHERE tenant_id = $1 AND id = $2 RETURNING ",
                    $crate::db::sql::user_columns!()
                ))
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(update.role.map($crate::db::TenantRole::as_str))
                .bind(disabled_ms.is_some())
                .bind(disabled_ms.flatten())
                .bind(update.email.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
                if update.disabled == Some(true) && row.is_some() {
                    for statement in [
                        "UPDATE user_sessions SET revoked_ms = $3 \
                         WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL",
                        "UPDATE api_tokens SET revoked_ms = $3 \
                         WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL",
                    ] {
                        sqlx::query(statement)
                            .bind(scope.tenant_id().as_str())
                            .bind(user_id.as_str())
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                row.map($crate::db::sql::TenantUserRow::into_record).transpose()
            }

            async fn delete_user(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
            ) -> $crate::db::DbResult<bool> {
                let mut tx = self.pool.begin().await?;
                for statement in [
                    "DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2",
                    "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
                    "DELETE FROM totp_recovery_codes WHERE tenant_id = $1 AND user_id = $2",
                    "DELETE FROM password_resets WHERE tenant_id = $1 AND user_id = $2",
                ] {
                    sqlx::query(statement)
                        .bind(scope.tenant_id().as_str())
                        .bind(user_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                let deleted = sqlx::query("DELETE FROM tenant_users WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(user_id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted == 1)
            }

            async fn set_password(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                password_hash: &str,
                keep_session: Option<&str>,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query("UPDATE tenant_users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(user_id.as_str())
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "UPDATE user_sessions SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 \
                     AND revoked_ms IS NULL AND id <> $4",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(now_ms)
                .bind(keep_session.unwrap_or(""))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE api_tokens SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(changed == 1)
            }

            async fn totp_state(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
            ) -> $crate::db::DbResult<$crate::db::TotpState> {
                let row: Option<(Option<String>, Option<String>, Option<i64>)> = sqlx::query_as(
                    "SELECT totp_secret, totp_pending, totp_last_step FROM tenant_users \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .map(|(secret, pending, last_step)| $crate::db::TotpState {
                        secret,
                        pending,
                        last_step,
                    })
                    .unwrap_or_default())
            }

            async fn set_totp_pending(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                secret: Option<&str>,
            ) -> $crate::db::DbResult<()> {
                sqlx::query("UPDATE tenant_users SET totp_pending = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(user_id.as_str())
                    .bind(secret)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn activate_totp(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                step: i64,
                recovery_code_hashes: &[String],
            ) -> $crate::db::DbResult<bool> {
                let mut tx = self.pool.begin().await?;
                let activated = sqlx::query(
                    "UPDATE tenant_users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $3 \
                     WHERE tenant_id = $1 AND id = $2 AND totp_pending IS NOT NULL",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(step)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if activated != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM totp_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(user_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for hash in recovery_code_hashes {
                    sqlx::query("INSERT INTO totp_recovery_codes (tenant_id, user_id, code_hash) VALUES ($1, $2, $3)")
                        .bind(scope.tenant_id().as_str())
                        .bind(user_id.as_str())
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn disable_totp(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
            ) -> $crate::db::DbResult<bool> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE tenant_users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("DELETE FROM totp_recovery_codes WHERE tenant_id = $1 AND user_id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(user_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(changed == 1)
            }

            async fn use_totp_step(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                step: i64,
            ) -> $crate::db::DbResult<bool> {
                let used = sqlx::query(
                    "UPDATE tenant_users SET totp_last_step = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(step)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(used == 1)
            }

            async fn use_recovery_code(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                code_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let used = sqlx::query(
                    "UPDATE totp_recovery_codes SET used_ms = $4 \
                     WHERE tenant_id = $1 AND user_id = $2 AND code_hash = $3 AND used_ms IS NULL",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(code_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(used == 1)
            }

            async fn create_password_reset(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                token_hash: &str,
                now_ms: i64,
                expires_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO password_resets (token_hash, tenant_id, user_id, created_ms, expires_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(now_ms)
                .bind(expires_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn password_resets_since(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                since_ms: i64,
            ) -> $crate::db::DbResult<u32> {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM password_resets WHERE tenant_id = $1 AND user_id = $2 AND created_ms >= $3",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::db::sql::count_u32(count))
            }

            async fn password_reset_user(
                &self,
                token_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<Option<($crate::tenancy::TenantId, $crate::tenancy::UserId, String)>> {
                let row: Option<(String, String, String)> = sqlx::query_as(
                    "SELECT r.tenant_id, r.user_id, u.login FROM password_resets r \
                     JOIN tenant_users u ON u.id = r.user_id \
                     WHERE r.token_hash = $1 AND r.used_ms IS NULL AND r.expires_ms > $2",
                )
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(tenant_id, user_id, login)| {
                    (
                        $crate::tenancy::TenantId::from_db(tenant_id),
                        $crate::tenancy::UserId::from_db(user_id),
                        login,
                    )
                }))
            }

            async fn consume_password_reset(
                &self,
                scope: &$crate::tenancy::TenantScope,
                token_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let used = sqlx::query(
                    "UPDATE password_resets SET used_ms = $3 \
                     WHERE tenant_id = $1 AND token_hash = $2 AND used_ms IS NULL AND expires_ms > $3",
                )
                .bind(scope.tenant_id().as_str())
                .bind(token_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(used == 1)
            }

            async fn login_candidate(
                &self,
                login: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::LoginCandidate>> {
                let row: Option<$crate::db::sql::LoginCandidateRow> = sqlx::query_as(
                    "SELECT u.tenant_id, u.id, u.login, u.password_hash, u.role, u.disabled_ms, t.status, \
                     t.admin_networks, u.totp_secret, u.totp_last_step, t.totp_policy, u.email \
                     FROM tenant_users u JOIN tenants t ON t.id = u.tenant_id WHERE u.login = $1",
                )
                .bind(login)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::LoginCandidateRow::into_candidate).transpose()
            }

            async fn record_login_failure(&self, login: &str, source: &str, now_ms: i64) -> $crate::db::DbResult<()> {
                sqlx::query("INSERT INTO login_failures (login, source, at_ms) VALUES ($1, $2, $3)")
                    .bind(login)
                    .bind(source)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn login_failures(
                &self,
                login: &str,
                source: &str,
                since_ms: i64,
            ) -> $crate::db::DbResult<$crate::db::LoginFailures> {
                let (by_login, last_by_login_ms): (i64, Option<i64>) =
                    sqlx::query_as("SELECT COUNT(*), MAX(at_ms) FROM login_failures WHERE login = $1 AND at_ms >= $2")
                        .bind(login)
                        .bind(since_ms)
                        .fetch_one(&self.pool)
                        .await?;
                let (by_source, last_by_source_ms): (i64, Option<i64>) =
                    sqlx::query_as("SELECT COUNT(*), MAX(at_ms) FROM login_failures WHERE source = $1 AND at_ms >= $2")
                        .bind(source)
                        .bind(since_ms)
                        .fetch_one(&self.pool)
                        .await?;
                Ok($crate::db::LoginFailures {
                    by_login: $crate::db::sql::count_u32(by_login),
                    last_by_login_ms,
                    by_source: $crate::db::sql::count_u32(by_source),
                    last_by_source_ms,
                })
            }

            async fn clear_login_failures(&self, login: &str) -> $crate::db::DbResult<()> {
                sqlx::query("DELETE FROM login_failures WHERE login = $1")
                    .bind(login)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_user_session(
                &self,
                scope: &$crate::tenancy::TenantScope,
                session: &$crate::db::NewUserSession,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO user_sessions (id, tenant_id, user_id, session_hash, csrf_hash, source, \
                     created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&session.id)
                .bind(scope.tenant_id().as_str())
                .bind(session.user_id.as_str())
                .bind(&session.session_hash)
                .bind(&session.csrf_hash)
                .bind(&session.source)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session_identity(
                &self,
                session_hash: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::SessionIdentity>> {
                let row: Option<$crate::db::sql::SessionIdentityRow> = sqlx::query_as(
                    "SELECT s.id, s.tenant_id, s.user_id, u.login, u.role, s.csrf_hash, s.created_ms, \
                     s.last_seen_ms, s.revoked_ms, u.disabled_ms, t.status, t.admin_networks, \
                     u.totp_secret IS NOT NULL AS totp_enrolled, t.totp_policy \
                     FROM user_sessions s JOIN tenant_users u ON u.id = s.user_id \
                     JOIN tenants t ON t.id = s.tenant_id WHERE s.session_hash = $1",
                )
                .bind(session_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::SessionIdentityRow::into_identity).transpose()
            }

            async fn touch_user_session(
                &self,
                scope: &$crate::tenancy::TenantScope,
                session_id: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query("UPDATE user_sessions SET last_seen_ms = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(session_id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn user_sessions(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
            ) -> $crate::db::DbResult<Vec<$crate::db::UserSessionRecord>> {
                let rows: Vec<$crate::db::sql::UserSessionRow> = sqlx::query_as(
                    "SELECT id, source, created_ms, last_seen_ms, revoked_ms FROM user_sessions \
                     WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_ms DESC, id",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::db::sql::UserSessionRow::into_record).collect())
            }

            async fn revoke_user_session(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: &$crate::tenancy::UserId,
                session_id: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let revoked = sqlx::query(
                    "UPDATE user_sessions SET revoked_ms = $4 \
                     WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_ms IS NULL",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.as_str())
                .bind(session_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(revoked == 1)
            }

            async fn create_api_token(
                &self,
                scope: &$crate::tenancy::TenantScope,
                token: &$crate::db::NewApiToken,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, tenant_id, user_id, name, role, token_hash, created_ms, expires_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&token.id)
                .bind(scope.tenant_id().as_str())
                .bind(token.user_id.as_str())
                .bind(&token.name)
                .bind(token.role.as_str())
                .bind(&token.token_hash)
                .bind(now_ms)
                .bind(token.expires_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn api_token_identity(
                &self,
                token_hash: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::ApiTokenIdentity>> {
                let row: Option<$crate::db::sql::ApiTokenIdentityRow> = sqlx::query_as(
                    "SELECT k.id, k.tenant_id, k.user_id, u.login, u.role AS user_role, k.role AS token_role, \
                     k.expires_ms, k.revoked_ms, u.disabled_ms, t.status, t.admin_networks, \
                     u.totp_secret IS NOT NULL AS totp_enrolled, t.totp_policy \
                     FROM api_tokens k JOIN tenant_users u ON u.id = k.user_id \
                     JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::ApiTokenIdentityRow::into_identity).transpose()
            }

            async fn touch_api_token(
                &self,
                scope: &$crate::tenancy::TenantScope,
                token_id: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query("UPDATE api_tokens SET last_used_ms = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id().as_str())
                    .bind(token_id)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn api_tokens(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: Option<&$crate::tenancy::UserId>,
            ) -> $crate::db::DbResult<Vec<$crate::db::ApiTokenRecord>> {
                let rows: Vec<$crate::db::sql::ApiTokenRow> = sqlx::query_as(
                    "SELECT id, user_id, name, role, created_ms, expires_ms, last_used_ms, revoked_ms \
                     FROM api_tokens WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
                     ORDER BY created_ms DESC, id",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.map($crate::tenancy::UserId::as_str))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::db::sql::ApiTokenRow::into_record).collect()
            }

            async fn revoke_api_token(
                &self,
                scope: &$crate::tenancy::TenantScope,
                user_id: Option<&$crate::tenancy::UserId>,
                token_id: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let revoked = sqlx::query(
                    "UPDATE api_tokens SET revoked_ms = $4 WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
                     AND id = $3 AND revoked_ms IS NULL",
                )
                .bind(scope.tenant_id().as_str())
                .bind(user_id.map($crate::tenancy::UserId::as_str))
                .bind(token_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(revoked == 1)
            }

            async fn append_event(
                &self,
                chain: $crate::db::EventChain<'_>,
                event: &$crate::db::NewEvent,
            ) -> $crate::db::DbResult<()> {
                let (chain, tenant_id) = match chain {
                    $crate::db::EventChain::Tenant(scope) => {
                        (scope.tenant_id().as_str(), Some(scope.tenant_id().as_str()))
                    }
                    $crate::db::EventChain::Operators => ($crate::db::OPERATOR_CHAIN, None),
                };
                let mut tx = self.pool.begin().await?;
                // Writing the chain's head row first serialises appends to one chain (a
                // row lock in PostgreSQL, the write lock in SQLite).
                sqlx::query(
                    "INSERT INTO event_chains (chain, last_seq, head_hash) VALUES ($1, 0, $2) \
                     ON CONFLICT (chain) DO NOTHING",
                )
                .bind(chain)
                .bind($crate::audit::GENESIS_HASH)
                .execute(&mut *tx)
                .await?;
                let (seq, prev_hash): (i64, String) = sqlx::query_as(
                    "UPDATE event_chains SET last_seq = last_seq + 1 WHERE chain = $1 RETURNING last_seq, head_hash",
                )
                .bind(chain)
                .fetch_one(&mut *tx)
                .await?;
                let hash = $crate::audit::event_hash(&prev_hash, chain, seq, tenant_id, event);
                sqlx::query(concat!(
                    "INSERT INTO events (",
                    $crate::db::sql::event_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(chain)
                .bind(seq)
                .bind(tenant_id)
                .bind(event.time_ms)
                .bind(&event.actor)
                .bind(&event.source)
                .bind(&event.action)
                .bind(&event.target)
                .bind(&event.result)
                .bind(&event.request_id)
                .bind(&prev_hash)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE event_chains SET head_hash = $2 WHERE chain = $1")
                    .bind(chain)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn events(
                &self,
                scope: &$crate::tenancy::TenantScope,
                from_ms: i64,
                to_ms: i64,
            ) -> $crate::db::DbResult<Vec<$crate::db::EventRecord>> {
                let rows: Vec<$crate::db::sql::EventRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::event_columns!(),
                    " FROM events WHERE chain = $1 AND time_ms >= $2 AND time_ms < $3 ORDER BY seq"
                ))
                .bind(scope.tenant_id().as_str())
                .bind(from_ms)
                .bind(to_ms)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::db::sql::EventRow::into_record).collect())
            }

            async fn all_events(&self) -> $crate::db::DbResult<Vec<$crate::db::EventRecord>> {
                let rows: Vec<$crate::db::sql::EventRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::db::sql::event_columns!(),
                    " FROM events ORDER BY chain, seq"
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::db::sql::EventRow::into_record).collect())
            }

            async fn chain_heads(&self) -> $crate::db::DbResult<Vec<$crate::db::ChainHead>> {
                let rows: Vec<(String, i64, String)> =
                    sqlx::query_as("SELECT chain, last_seq, head_hash FROM event_chains ORDER BY chain")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(chain, last_seq, head_hash)| $crate::db::ChainHead {
                        chain,
                        last_seq,
                        head_hash,
                    })
                    .collect())
            }

            async fn insert_registration_token(
                &self,
                scope: &$crate::tenancy::TenantScope,
                token_hash: &str,
                now_ms: i64,
                expires_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO registration_tokens (id, tenant_id, token_hash, created_ms, expires_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind($crate::secrets::random_hex(16))
                .bind(scope.tenant_id().as_str())
                .bind(token_hash)
                .bind(now_ms)
                .bind(expires_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn registration_token_usable(
                &self,
                scope: &$crate::tenancy::TenantScope,
                token_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT expires_ms FROM registration_tokens \
                     WHERE tenant_id = $1 AND token_hash = $2 AND used_ms IS NULL AND expires_ms > $3",
                )
                .bind(scope.tenant_id().as_str())
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn register_machine(
                &self,
                machine: &$crate::db::NewMachine,
                now_ms: i64,
            ) -> $crate::db::DbResult<$crate::db::RegistrationOutcome> {
                use $crate::db::{RegistrationOutcome, TenantStatus};
                let mut tx = self.pool.begin().await?;
                // Consume the token first: a write, so concurrent registrations serialise
                // from here on (see the module docs), and a token is used at most once.
                let tenant_id: Option<String> = sqlx::query_scalar(
                    "UPDATE registration_tokens SET used_ms = $1 \
                     WHERE token_hash = $2 AND used_ms IS NULL AND expires_ms > $1 RETURNING tenant_id",
                )
                .bind(now_ms)
                .bind(&machine.registration_token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(tenant_id) = tenant_id else {
                    let found: Option<(Option<i64>, i64)> =
                        sqlx::query_as("SELECT used_ms, expires_ms FROM registration_tokens WHERE token_hash = $1")
                            .bind(&machine.registration_token_hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                    tx.rollback().await?;
                    return Ok(match found {
                        None => RegistrationOutcome::UnknownToken,
                        Some((Some(_), _)) => RegistrationOutcome::TokenUsed,
                        Some((None, _)) => RegistrationOutcome::TokenExpired,
                    });
                };
                let (status, max_machines, networks): (String, i64, String) = sqlx::query_as($lock_tenant)
                    .bind(&tenant_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let status: TenantStatus = status.parse()?;
                if status != TenantStatus::Active {
                    tx.rollback().await?;
                    return Ok(RegistrationOutcome::TenantNotActive(status));
                }
                let networks = $crate::db::sql::networks_from_db(&networks)?;
                if !$crate::tenancy::agent_network_allows(&networks, machine.peer) {
                    tx.rollback().await?;
                    return Ok(RegistrationOutcome::PeerOutsideAgentNetworks);
                }
                let machines: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM machines WHERE tenant_id = $1 AND revoked_ms IS NULL")
                        .bind(&tenant_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if machines >= max_machines {
                    tx.rollback().await?;
                    return Ok(RegistrationOutcome::MachineLimitReached {
                        max_machines: u32::try_from(max_machines).unwrap_or(u32::MAX),
                    });
                }
                sqlx::query("INSERT INTO machines (id, tenant_id, name, created_ms) VALUES ($1, $2, $3, $4)")
                    .bind(machine.machine_id.as_str())
                    .bind(&tenant_id)
                    .bind(&machine.name)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO agent_credentials (id, tenant_id, machine_id, credential_hash, created_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind($crate::secrets::random_hex(16))
                .bind(&tenant_id)
                .bind(machine.machine_id.as_str())
                .bind(&machine.credential_hash)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE registration_tokens SET used_by_machine = $1 WHERE token_hash = $2")
                    .bind(machine.machine_id.as_str())
                    .bind(&machine.registration_token_hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RegistrationOutcome::Registered {
                    tenant_id: $crate::tenancy::TenantId::from_db(tenant_id),
                    machine_id: machine.machine_id.clone(),
                })
            }

            async fn agent_by_credential(
                &self,
                credential_hash: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::AgentIdentity>> {
                let row: Option<$crate::db::sql::AgentRow> = sqlx::query_as(
                    "SELECT c.tenant_id, c.machine_id, c.revoked_ms, t.status, t.agent_networks \
                     FROM agent_credentials c JOIN tenants t ON t.id = c.tenant_id \
                     WHERE c.credential_hash = $1",
                )
                .bind(credential_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::db::sql::AgentRow::into_identity).transpose()
            }

            async fn machines(
                &self,
                scope: &$crate::tenancy::TenantScope,
            ) -> $crate::db::DbResult<Vec<$crate::db::MachineRecord>> {
                let rows: Vec<$crate::db::sql::MachineRow> = sqlx::query_as(
                    "SELECT id, tenant_id, name, created_ms, revoked_ms FROM machines \
                     WHERE tenant_id = $1 ORDER BY created_ms, id",
                )
                .bind(scope.tenant_id().as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::db::sql::MachineRow::into_record).collect())
            }

            async fn revoke_machine(
                &self,
                scope: &$crate::tenancy::TenantScope,
                machine_id: &$crate::tenancy::MachineId,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked = sqlx::query(
                    "UPDATE machines SET revoked_ms = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_ms IS NULL",
                )
                .bind(now_ms)
                .bind(machine_id.as_str())
                .bind(scope.tenant_id().as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE agent_credentials SET revoked_ms = $1 \
                     WHERE machine_id = $2 AND tenant_id = $3 AND revoked_ms IS NULL",
                )
                .bind(now_ms)
                .bind(machine_id.as_str())
                .bind(scope.tenant_id().as_str())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(revoked == 1)
            }

            async fn record_session(
                &self,
                scope: &$crate::tenancy::TenantScope,
                session_id: &str,
                machine: &$crate::tenancy::MachineId,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query(
                    "INSERT INTO upload_sessions (tenant_id, session_id, machine_id, created_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(scope.tenant_id().as_str())
                .bind(session_id)
                .bind(machine.as_str())
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session_machine(
                &self,
                scope: &$crate::tenancy::TenantScope,
                session_id: &str,
            ) -> $crate::db::DbResult<Option<$crate::tenancy::MachineId>> {
                let machine: Option<String> = sqlx::query_scalar(
                    "SELECT machine_id FROM upload_sessions WHERE tenant_id = $1 AND session_id = $2",
                )
                .bind(scope.tenant_id().as_str())
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(machine.map($crate::tenancy::MachineId::from_db))
            }

            async fn claim_snapshot(
                &self,
                scope: &$crate::tenancy::TenantScope,
                snapshot_id: &str,
                machine: &$crate::tenancy::MachineId,
                now_ms: i64,
            ) -> $crate::db::DbResult<bool> {
                sqlx::query(
                    "INSERT INTO snapshot_owners (tenant_id, snapshot_id, machine_id, created_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, snapshot_id) DO NOTHING",
                )
                .bind(scope.tenant_id().as_str())
                .bind(snapshot_id)
                .bind(machine.as_str())
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                let owner: String = sqlx::query_scalar(
                    "SELECT machine_id FROM snapshot_owners WHERE tenant_id = $1 AND snapshot_id = $2",
                )
                .bind(scope.tenant_id().as_str())
                .bind(snapshot_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(owner == machine.as_str())
            }

            async fn machine_snapshots(
                &self,
                scope: &$crate::tenancy::TenantScope,
                machine: &$crate::tenancy::MachineId,
            ) -> $crate::db::DbResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT snapshot_id FROM snapshot_owners WHERE tenant_id = $1 AND machine_id = $2 \
                     ORDER BY snapshot_id",
                )
                .bind(scope.tenant_id().as_str())
                .bind(machine.as_str())
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
pub(super) use impl_service_db;
