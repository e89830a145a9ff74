//! What `/metrics` says about the service as a whole: tenants by status with their
//! stored bytes and quotas, live sessions, backup runs by result, waiting jobs and the
//! mail outbox. Read at each scrape from the database (so every server of a shared
//! PostgreSQL reports the same figures) and from the vaults this process has open.
//!
//! [`gauges`] is for the monitoring edge, which checks the scrape token or the caller's
//! network first: the figures name tenants by service code and hold no tenant's data.
//! [`capacity`] is the console's capacity page, for operators.

use std::collections::HashMap;

use crate::authz::{OperatorPrincipal, Permission};
use crate::db::monitoring::{self, LabelCounts};
use crate::db::tenants;
use crate::ids::TenantId;
use crate::model::TenantStatus;
use crate::{Service, ServiceResult, duration_ms};

/// One tenant's contract and use.
#[derive(Debug, Clone)]
pub struct TenantGauge {
    pub service_code: String,
    pub status: TenantStatus,
    /// The live figure when this process has the vault open, else the last measured one.
    pub stored_bytes: u64,
    /// 0 means no quota.
    pub quota_bytes: u64,
}

/// The service-wide figures of one scrape.
#[derive(Debug, Clone)]
pub struct ServiceGauges {
    pub tenants: Vec<TenantGauge>,
    pub portal_sessions: u64,
    pub console_sessions: u64,
    /// Recorded backup runs by status.
    pub backup_runs: LabelCounts,
    /// Queued jobs by kind.
    pub waiting_jobs: LabelCounts,
    /// Outbox mails by status.
    pub outbox: LabelCounts,
}

/// Reads the figures (a handful of counting statements).
pub async fn gauges(svc: &Service) -> ServiceResult<ServiceGauges> {
    let now = svc.now_ms();
    let idle_before = now.saturating_sub(duration_ms(svc.settings.session_idle_timeout));
    let begun_before = now.saturating_sub(duration_ms(svc.settings.session_absolute_timeout));
    let (portal_sessions, console_sessions) =
        monitoring::live_sessions(&svc.db, idle_before, begun_before).await?;
    Ok(ServiceGauges {
        tenants: tenant_gauges(svc).await?,
        portal_sessions,
        console_sessions,
        backup_runs: monitoring::runs_by_status(&svc.db).await?,
        waiting_jobs: monitoring::waiting_jobs(&svc.db).await?,
        outbox: monitoring::outbox_by_status(&svc.db).await?,
    })
}

/// Every tenant's contract and stored bytes: live for the vaults this process has
/// open, else as last measured.
async fn tenant_gauges(svc: &Service) -> ServiceResult<Vec<TenantGauge>> {
    let measured: HashMap<TenantId, u64> = monitoring::measured_stored_bytes(&svc.db)
        .await?
        .into_iter()
        .collect();
    let live = svc.vaults.open_stored_bytes().await;
    Ok(tenants::list(&svc.db)
        .await?
        .into_iter()
        .map(|tenant| {
            let stored_bytes = live.get(&tenant.id).or(measured.get(&tenant.id)).copied();
            TenantGauge {
                service_code: tenant.service_code,
                status: tenant.status,
                stored_bytes: stored_bytes.unwrap_or(0),
                quota_bytes: tenant.quota_bytes,
            }
        })
        .collect())
}

/// What the capacity page shows: every tenant's use and quota, and the stored total of
/// each measured day of the last 31.
#[derive(Debug, Clone)]
pub struct CapacityReport {
    pub tenants: Vec<TenantGauge>,
    /// `(YYYY-MM-DD, bytes)`, oldest first.
    pub daily_totals: Vec<(String, u64)>,
}

/// The service's use against its contracts, for an operator.
pub async fn capacity(svc: &Service, operator: &OperatorPrincipal) -> ServiceResult<CapacityReport> {
    operator.require(Permission::ReadTenants)?;
    let first_day = crate::day_in_zone(svc.now_ms().saturating_sub(30 * 86_400_000), "UTC");
    Ok(CapacityReport {
        tenants: tenant_gauges(svc).await?,
        daily_totals: monitoring::stored_by_day(&svc.db, &first_day).await?,
    })
}
