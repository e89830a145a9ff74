//! `/`: every tenant with its contract, status, storage used against its quota,
//! machines and last backup — what an operator checks first.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::Permission;
use kura_service::model::{TenantActivity, TenantRecord, TenantStatus};
use kura_service::ops::tenants;

use super::Desk;
use crate::app::AppState;
use crate::web::render;

/// One row of the tenant list.
struct TenantRow {
    tenant: TenantRecord,
    /// Stored bytes at the last measurement, if measured yet.
    stored_bytes: Option<u64>,
    machines: u64,
    last_backup_ms: Option<i64>,
}

impl TenantRow {
    fn new(tenant: TenantRecord, activity: Option<TenantActivity>) -> TenantRow {
        TenantRow {
            stored_bytes: activity.as_ref().and_then(|a| a.stored_bytes),
            machines: activity.as_ref().map_or(0, |a| a.machines),
            last_backup_ms: activity.as_ref().and_then(|a| a.last_backup_ms),
            tenant,
        }
    }

    /// Storage used as a whole percentage of the quota, when measured.
    fn percent_used(&self) -> Option<u64> {
        let used = self.stored_bytes?;
        Some(used.saturating_mul(100) / self.tenant.quota_bytes.max(1))
    }

    fn status_key(&self) -> &'static str {
        status_key(self.tenant.status)
    }

    fn status_class(&self) -> &'static str {
        status_class(self.tenant.status)
    }

    /// Badge colour of the storage used: amber from 80 %, red from 95 %.
    fn usage_class(&self) -> &'static str {
        match self.percent_used() {
            Some(p) if p >= 95 => "bad",
            Some(p) if p >= 80 => "warn",
            _ => "ok",
        }
    }

    fn support_live(&self, now_ms: &i64) -> bool {
        self.tenant.support_until_ms.is_some_and(|until| until > *now_ms)
    }
}

/// The message naming a tenant's status.
pub(super) fn status_key(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "console-status-active",
        TenantStatus::Suspended => "console-status-suspended",
        TenantStatus::Terminated => "console-status-terminated",
    }
}

/// Badge colour of a tenant's status.
pub(super) fn status_class(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "ok",
        TenantStatus::Suspended => "warn",
        TenantStatus::Terminated => "bad",
    }
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    d: Desk,
    rows: Vec<TenantRow>,
    may_create: bool,
}

/// `GET /`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    match tenants::overview(&state.service, &d.operator).await {
        Ok(list) => {
            let rows = list
                .into_iter()
                .map(|(tenant, activity)| TenantRow::new(tenant, activity))
                .collect();
            let may_create = d.operator.role().allows(Permission::ManageTenants);
            render(StatusCode::OK, &TenantsPage { d, rows, may_create })
        }
        Err(err) => d.error_page(&err, "/account"),
    }
}
