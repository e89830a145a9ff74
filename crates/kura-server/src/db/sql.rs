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
    AgentIdentity, DbError, DbResult, MachineRecord, OperatorTokenRecord, TenantRecord, TenantUserRecord,
};
use crate::tenancy::{MachineId, TenantId};

/// The columns of `tenants`, in the order of [`TenantRow`].
macro_rules! tenant_columns {
    () => {
        "id, service_code, name, quota_bytes, max_machines, region, encryption_required, immutable_days, \
         agent_networks, status, time_zone, created_ms"
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
            status: self.status.parse()?,
            time_zone: self.time_zone,
            created_ms: self.created_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TenantUserRow {
    login: String,
    password_hash: String,
    role: String,
    created_ms: i64,
}

impl TenantUserRow {
    pub(super) fn into_record(self) -> DbResult<TenantUserRecord> {
        Ok(TenantUserRecord {
            login: self.login,
            password_hash: self.password_hash,
            role: self.role.parse()?,
            created_ms: self.created_ms,
        })
    }
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
}

impl OperatorTokenRow {
    pub(super) fn into_record(self) -> OperatorTokenRecord {
        OperatorTokenRecord {
            id: self.id,
            name: self.name,
        }
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
                token_hash: &str,
                now_ms: i64,
            ) -> $crate::db::DbResult<()> {
                sqlx::query("INSERT INTO operator_tokens (id, name, token_hash, created_ms) VALUES ($1, $2, $3, $4)")
                    .bind($crate::secrets::random_hex(16))
                    .bind(name)
                    .bind(token_hash)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn operator_token(
                &self,
                token_hash: &str,
            ) -> $crate::db::DbResult<Option<$crate::db::OperatorTokenRecord>> {
                let row: Option<$crate::db::sql::OperatorTokenRow> = sqlx::query_as(
                    "SELECT id, name FROM operator_tokens WHERE token_hash = $1 AND revoked_ms IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map($crate::db::sql::OperatorTokenRow::into_record))
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
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11) RETURNING ",
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
                    "INSERT INTO tenant_users (id, tenant_id, login, password_hash, role, created_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind($crate::secrets::random_hex(16))
                .bind(tenant.id.as_str())
                .bind(&admin.login)
                .bind(&admin.password_hash)
                .bind(admin.role.as_str())
                .bind(now_ms)
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
                     agent_networks = COALESCE($8, agent_networks), time_zone = COALESCE($9, time_zone) \
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

            async fn tenant_users(
                &self,
                scope: &$crate::tenancy::TenantScope,
            ) -> $crate::db::DbResult<Vec<$crate::db::TenantUserRecord>> {
                let rows: Vec<$crate::db::sql::TenantUserRow> = sqlx::query_as(
                    "SELECT login, password_hash, role, created_ms FROM tenant_users \
                     WHERE tenant_id = $1 ORDER BY login",
                )
                .bind(scope.tenant_id().as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::db::sql::TenantUserRow::into_record).collect()
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
