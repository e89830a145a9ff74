//! A tenant: one customer company and its contract.

use std::str::FromStr;

use ipnet::IpNet;

use crate::db::DbError;
use crate::ids::TenantId;
use crate::totp::TotpPolicy;

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

    fn from_str(text: &str) -> Result<Self, DbError> {
        match text {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "terminated" => Ok(TenantStatus::Terminated),
            other => Err(DbError::Corrupt(format!("unknown tenant status {other:?}"))),
        }
    }
}

/// A tenant as stored.
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
    /// The language of the tenant's pages and mail unless a user chose their own; `None`
    /// follows the time zone (Japanese for Asia/Tokyo).
    pub language: Option<super::Language>,
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
    pub language: Option<super::Language>,
}

/// A tenant's usage on one day: the day's last measurement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD` in the tenant's time zone.
    pub day: String,
    pub stored_bytes: u64,
    pub snapshots: u64,
    /// Machines registered and not revoked.
    pub machines: u64,
}

/// One tenant's metered day, for billing (and as the export serves it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MeterRow {
    /// `YYYY-MM-DD` in the tenant's time zone.
    pub day: String,
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    pub service_code: String,
    /// The day's last measurement (0 when none was taken that day).
    pub stored_bytes: u64,
    /// Sum of the live snapshots' sizes before dedup.
    pub logical_bytes: u64,
    pub machines: u64,
    pub snapshots: u64,
    /// Pack bytes received from the tenant's agents.
    pub uploaded_bytes: u64,
    /// Blob bytes sent back to them (restores).
    pub restored_bytes: u64,
}

/// A tenant's activity as the console's tenant list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantActivity {
    pub tenant_id: TenantId,
    /// Stored bytes at the last measurement (the `meter` job), if measured yet.
    pub stored_bytes: Option<u64>,
    pub measured_ms: Option<i64>,
    /// Machines registered and not revoked.
    pub machines: u64,
    /// When the newest committed snapshot was taken.
    pub last_backup_ms: Option<i64>,
}
