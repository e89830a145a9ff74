//! `/capacity`: the storage the service has and uses — the file system of the data
//! directory (size, free), what the vaults store in all and per tenant, how that grew
//! over the last 30 days (and, at that pace, when the space runs out), and the quotas
//! sold against the space there is.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ops::monitoring::{self, CapacityReport, TenantGauge};

use super::Desk;
use crate::app::AppState;
use crate::config::ObjectStoreKind;
use crate::web::render;

#[derive(Template)]
#[template(path = "console/capacity.html")]
struct CapacityPage {
    d: Desk,
    /// Size and free bytes of the data directory's file system.
    space: Option<(u64, u64)>,
    /// The S3 bucket the vaults are in, when they are not in the data directory.
    bucket: Option<String>,
    report: CapacityReport,
    /// Tenants by stored bytes, largest first.
    largest: Vec<TenantGauge>,
}

impl CapacityPage {
    fn stored(&self) -> u64 {
        self.report.tenants.iter().map(|t| t.stored_bytes).sum()
    }

    fn stored_text(&self) -> String {
        self.d.tr.bytes(&self.stored())
    }

    fn quotas_text(&self) -> String {
        self.d.tr.bytes(&self.quotas())
    }

    fn quotas(&self) -> u64 {
        self.report.tenants.iter().map(|t| t.quota_bytes).sum()
    }

    /// Quotas sold per byte of space, in percent.
    fn quota_percent(&self) -> Option<u64> {
        let (size, _) = self.space?;
        (size > 0)
            .then(|| u64::try_from(u128::from(self.quotas()) * 100 / u128::from(size)).unwrap_or(u64::MAX))
    }

    /// Growth of the stored total over the measured days: (bytes, days), when two days
    /// were measured.
    fn growth(&self) -> Option<(i128, i64)> {
        let totals = &self.report.daily_totals;
        let (first, last) = (totals.first()?, totals.last()?);
        let day = |text: &str| text.parse::<jiff::civil::Date>().ok();
        let days = (day(&last.0)? - day(&first.0)?).get_days();
        (days > 0).then(|| (i128::from(last.1) - i128::from(first.1), i64::from(days)))
    }

    fn growth_text(&self) -> String {
        let tr = &self.d.tr;
        match self.growth() {
            None => tr.t("console-capacity-growth-unknown"),
            Some((bytes, days)) => {
                let sign = if bytes < 0 { "−" } else { "+" };
                let per_day = bytes.unsigned_abs() / days.unsigned_abs() as u128;
                tr.t2(
                    "console-capacity-growth-figures",
                    (
                        "change",
                        &format!(
                            "{sign}{}",
                            tr.bytes(&u64::try_from(bytes.unsigned_abs()).unwrap_or(u64::MAX))
                        ),
                    ),
                    (
                        "per_day",
                        &format!("{sign}{}", tr.bytes(&u64::try_from(per_day).unwrap_or(u64::MAX))),
                    ),
                )
            }
        }
    }

    /// Days until the free space is gone at the pace of the last 30 days.
    fn days_left(&self) -> Option<u64> {
        let (bytes, days) = self.growth()?;
        let (_, free) = self.space?;
        let per_day = u64::try_from(bytes / i128::from(days)).ok().filter(|b| *b > 0)?;
        Some(free / per_day)
    }

    fn percent_of_quota(&self, tenant: &TenantGauge) -> Option<u64> {
        (tenant.quota_bytes > 0).then(|| tenant.stored_bytes.saturating_mul(100) / tenant.quota_bytes)
    }
}

/// `GET /capacity`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    let report = match monitoring::capacity(&state.service, &d.operator).await {
        Ok(report) => report,
        Err(err) => return d.error_page(&err, "/"),
    };
    let mut largest = report.tenants.clone();
    largest.sort_by_key(|tenant| std::cmp::Reverse(tenant.stored_bytes));
    largest.truncate(20);
    let bucket = (state.config.object_store == ObjectStoreKind::S3).then(|| state.config.s3_bucket.clone());
    render(
        StatusCode::OK,
        &CapacityPage {
            space: crate::host::file_system_space(&state.config.data_dir),
            bucket,
            report,
            largest,
            d,
        },
    )
}
