//! A tenant's usage against its contract, now and day by day (the dashboard's chart and
//! `GET /api/v1/usage`). The history is what the metering job measured; today is
//! measured now.

use crate::authz::{Permission, UserPrincipal};
use crate::db::{snapshots, usage};
use crate::model::UsageDay;
use crate::ops::{tenants, vault};
use crate::{Service, ServiceError, ServiceResult, day_in_zone};

/// Longest history one request may ask for.
pub const MAX_DAYS: u32 = 366;

/// Usage now against the contract, and the history of the last days.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub stored_bytes: u64,
    pub quota_bytes: u64,
    pub snapshots: u64,
    pub machines: u64,
    pub max_machines: u32,
    /// Oldest first, ending today (measured now); days nobody measured are absent.
    pub history: Vec<UsageDay>,
}

impl UsageReport {
    /// Stored bytes in percent of the quota (more than 100 when over it).
    pub fn percent(&self) -> u64 {
        if self.quota_bytes == 0 {
            return 0;
        }
        u64::try_from(u128::from(self.stored_bytes) * 100 / u128::from(self.quota_bytes)).unwrap_or(u64::MAX)
    }
}

/// The tenant's usage now and over the last `days` days (today included, 1–366).
pub async fn report(svc: &Service, user: &UserPrincipal, days: u32) -> ServiceResult<UsageReport> {
    user.require(Permission::ViewStatus)?;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ServiceError::invalid(format!(
            "days must be between 1 and {MAX_DAYS}"
        )));
    }
    let tenant = tenants::current(svc, &user.scope).await?;
    let now = svc.now_ms();
    let first_ms = now.saturating_sub(i64::from(days - 1) * 86_400_000);
    let first_day = day_in_zone(first_ms, &tenant.time_zone);
    let stored_bytes = vault::find(svc, &user.scope)
        .await?
        .map_or(0, |tv| tv.stored_bytes());
    let snapshots = snapshots::committed_count(&svc.db, &user.scope).await?;
    let machines = crate::db::machines::active_count(&svc.db, &user.scope).await?;
    let today = UsageDay {
        day: day_in_zone(now, &tenant.time_zone),
        stored_bytes,
        snapshots,
        machines,
    };
    let mut history = usage::history(&svc.db, &user.scope, &first_day).await?;
    history.retain(|day| day.day < today.day);
    history.push(today);
    Ok(UsageReport {
        stored_bytes,
        quota_bytes: tenant.quota_bytes,
        snapshots,
        machines,
        max_machines: tenant.max_machines,
        history,
    })
}
