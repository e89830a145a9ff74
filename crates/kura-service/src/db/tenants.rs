//! `tenants`: contracts. Creating one is an operator's act (service-wide); everything
//! else is about one tenant, named by its scope.

use super::{
    DbResult, Query, Target, Tx, from_db_int, map_unique_violation, networks_from_db, networks_to_db,
    to_db_int,
};
use crate::authz::TenantKey;
use crate::ids::{TenantId, UserId};
use crate::model::{
    Language, NewTenant, NewTenantUser, TenantActivity, TenantRecord, TenantStatus, TenantUpdate,
};

/// The columns of `tenants`, in the order of [`TenantRow`].
macro_rules! tenant_columns {
    () => {
        "id, service_code, name, quota_bytes, max_machines, region, encryption_required, immutable_days, \
         agent_networks, status, time_zone, created_ms, admin_networks, totp_policy, support_until_ms, language"
    };
}

#[derive(sqlx::FromRow)]
struct TenantRow {
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
    language: Option<String>,
}

impl TenantRow {
    fn into_record(self) -> DbResult<TenantRecord> {
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
            language: self.language.map(|l| l.parse()).transpose()?,
        })
    }
}

fn into_record(row: Option<TenantRow>) -> DbResult<Option<TenantRecord>> {
    row.map(TenantRow::into_record).transpose()
}

/// Creates a tenant and its first admin. A taken service code or login is a conflict.
pub async fn create(
    tx: &mut Tx,
    tenant: &NewTenant,
    admin: &NewTenantUser,
    now_ms: i64,
) -> DbResult<TenantRecord> {
    let conflict = |err| map_unique_violation(err, &tenant.service_code, &admin.login);
    let row: TenantRow = Query::service(concat!(
        "INSERT INTO tenants (",
        tenant_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, '[]', 'optional', NULL, NULL) RETURNING ",
        tenant_columns!()
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
    let record = row.into_record()?;
    super::users::insert(&mut *tx, &record.id, &UserId::generate(), admin, now_ms)
        .await
        .map_err(conflict)?;
    Ok(record)
}

/// All tenants, by service code.
pub async fn list<'c>(on: impl Target<'c>) -> DbResult<Vec<TenantRecord>> {
    let rows: Vec<TenantRow> = Query::service(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants ORDER BY service_code"
    ))
    .fetch_all(on)
    .await?;
    rows.into_iter().map(TenantRow::into_record).collect()
}

/// What the console's tenant list shows beside each contract: the last measured storage
/// use, the machines registered and the newest committed backup, for every tenant.
pub async fn overview<'c>(on: impl Target<'c>) -> DbResult<Vec<TenantActivity>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        stored_bytes: Option<i64>,
        measured_ms: Option<i64>,
        machines: i64,
        last_backup_ns: Option<i64>,
    }
    let rows: Vec<Row> = Query::service(
        "SELECT t.id, \
         (SELECT u.stored_bytes FROM usage_days u WHERE u.tenant_id = t.id ORDER BY u.day DESC LIMIT 1) \
         AS stored_bytes, \
         (SELECT u.measured_ms FROM usage_days u WHERE u.tenant_id = t.id ORDER BY u.day DESC LIMIT 1) \
         AS measured_ms, \
         (SELECT COUNT(*) FROM machines m WHERE m.tenant_id = t.id AND m.revoked_ms IS NULL) AS machines, \
         (SELECT MAX(s.time_ns) FROM snapshot_owners s WHERE s.tenant_id = t.id AND s.committed) \
         AS last_backup_ns FROM tenants t",
    )
    .fetch_all(on)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| TenantActivity {
            tenant_id: TenantId::from_db(row.id),
            stored_bytes: row.stored_bytes.map(i64::unsigned_abs),
            measured_ms: row.measured_ms,
            machines: row.machines.unsigned_abs(),
            last_backup_ms: row.last_backup_ns.map(|ns| ns / 1_000_000),
        })
        .collect())
}

/// The tenant with this service code, if any.
pub async fn by_service_code<'c>(on: impl Target<'c>, service_code: &str) -> DbResult<Option<TenantRecord>> {
    into_record(
        Query::service(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE service_code = $1"
        ))
        .bind(service_code)
        .fetch_optional(on)
        .await?,
    )
}

/// The scoped tenant (`None` if the id names no tenant).
pub async fn get<'c>(on: impl Target<'c>, scope: &impl TenantKey) -> DbResult<Option<TenantRecord>> {
    into_record(
        Query::tenant(
            scope,
            concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1"),
        )
        .fetch_optional(on)
        .await?,
    )
}

/// The scoped tenant, its row locked until the transaction ends (on PostgreSQL; SQLite's
/// transactions hold the write lock already), so checks on it stay true until commit.
pub async fn lock(tx: &mut Tx, scope: &impl TenantKey) -> DbResult<Option<TenantRecord>> {
    let sql = if tx.is_postgres() {
        concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = $1 FOR UPDATE"
        )
    } else {
        concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1")
    };
    into_record(Query::tenant(scope, sql).fetch_optional(tx).await?)
}

/// Applies `update`; returns the tenant as it is now.
pub async fn update<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    update: &TenantUpdate,
) -> DbResult<Option<TenantRecord>> {
    let quota_bytes = update
        .quota_bytes
        .map(|q| to_db_int(q, "quota_bytes"))
        .transpose()?;
    into_record(
        Query::tenant(
            scope,
            concat!(
                "UPDATE tenants SET name = COALESCE($2, name), quota_bytes = COALESCE($3, quota_bytes), \
                 max_machines = COALESCE($4, max_machines), region = COALESCE($5, region), \
                 encryption_required = COALESCE($6, encryption_required), \
                 immutable_days = COALESCE($7, immutable_days), \
                 agent_networks = COALESCE($8, agent_networks), time_zone = COALESCE($9, time_zone), \
                 admin_networks = COALESCE($10, admin_networks), totp_policy = COALESCE($11, totp_policy), \
                 language = COALESCE($12, language) WHERE id = $1 RETURNING ",
                tenant_columns!()
            ),
        )
        .bind(update.name.as_deref())
        .bind(quota_bytes)
        .bind(update.max_machines.map(i64::from))
        .bind(update.region.as_deref())
        .bind(update.encryption_required)
        .bind(update.immutable_days.map(i64::from))
        .bind(update.agent_networks.as_deref().map(networks_to_db))
        .bind(update.time_zone.as_deref())
        .bind(update.admin_networks.as_deref().map(networks_to_db))
        .bind(update.totp_policy.map(|policy| policy.as_str()))
        .bind(update.language.map(Language::as_str))
        .fetch_optional(on)
        .await?,
    )
}

pub async fn set_status<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    status: TenantStatus,
) -> DbResult<Option<TenantRecord>> {
    into_record(
        Query::tenant(
            scope,
            concat!(
                "UPDATE tenants SET status = $2 WHERE id = $1 RETURNING ",
                tenant_columns!()
            ),
        )
        .bind(status.as_str())
        .fetch_optional(on)
        .await?,
    )
}

/// Grants support access until `until_ms`, or withdraws it (`None`).
pub async fn set_support_access<'c>(
    on: impl Target<'c>,
    scope: &impl TenantKey,
    until_ms: Option<i64>,
) -> DbResult<Option<TenantRecord>> {
    into_record(
        Query::tenant(
            scope,
            concat!(
                "UPDATE tenants SET support_until_ms = $2 WHERE id = $1 RETURNING ",
                tenant_columns!()
            ),
        )
        .bind(until_ms)
        .fetch_optional(on)
        .await?,
    )
}
