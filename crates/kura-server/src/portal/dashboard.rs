//! The dashboard (`/`): usage against the contract's quota with a chart of the last 30
//! days, the open alerts, warnings (machines without a backup for 48 hours), each
//! machine's newest backup of each source, and the newest events; and the contract page
//! (`/contract`): what the tenant has agreed with the provider, where its data lives and
//! who is responsible for what.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::Permission;
use kura_service::model::{AlertFilter, EventRecord, LatestBackup, RunRecord, RunStatus, UsageDay};
use kura_service::ops::events;
use kura_service::ops::machines::{self, MachineOverview};
use kura_service::ops::usage::{self, UsageReport};

use super::Viewer;
use super::alerts::{self, AlertRow};
use crate::app::AppState;
use crate::web::render;

/// Storage use from which the usage bar turns red: the first level that raises an alert.
const QUOTA_WARNING_PERCENT: u64 = kura_service::ops::alerts::QUOTA_LEVELS[0] as u64;
/// A machine without a backup for this long is named in a warning.
pub const OVERDUE_MS: i64 = 48 * 3600 * 1000;
/// Days the usage chart shows.
const CHART_DAYS: u32 = 30;
/// Open alerts the dashboard lists; `/alerts` has them all.
const OPEN_ALERTS: u32 = 20;
/// Newest events on the dashboard.
const RECENT_EVENTS: u32 = 10;
/// Sources the dashboard lists, those that most need attention first; `/machines` has
/// every machine.
const BACKUP_ROWS: usize = 25;

/// One row of the dashboard's backups: a machine's source and its newest backup, or a
/// machine without any.
pub struct BackupRow {
    pub machine: String,
    pub overdue: bool,
    pub backup: Option<LatestBackup>,
}

impl BackupRow {
    /// Orders rows by how much they need attention: no backup at all, then backups with
    /// unreadable files, then the oldest.
    fn attention(&self) -> (u8, i64) {
        match &self.backup {
            None => (0, 0),
            Some(b) if b.facts.errors > 0 => (1, b.facts.time_ns),
            Some(b) => (2, b.facts.time_ns),
        }
    }
}

/// The dashboard's rows of the active machines, most in need of attention first, at most
/// [`BACKUP_ROWS`]; and how many there are in all.
fn backup_rows(machines: Vec<MachineOverview>, now_ms: i64) -> (Vec<BackupRow>, usize) {
    let mut rows = Vec::new();
    for overview in machines.into_iter().filter(|o| o.machine.revoked_ms.is_none()) {
        let overdue = overview.overdue(now_ms, OVERDUE_MS);
        if overview.latest.is_empty() {
            rows.push(BackupRow {
                machine: overview.machine.name.clone(),
                overdue,
                backup: None,
            });
        }
        for backup in overview.latest {
            rows.push(BackupRow {
                machine: overview.machine.name.clone(),
                overdue: now_ms.saturating_sub(backup.facts.time_ns.div_euclid(1_000_000)) >= OVERDUE_MS,
                backup: Some(backup),
            });
        }
    }
    let total = rows.len();
    rows.sort_by_key(BackupRow::attention);
    rows.truncate(BACKUP_ROWS);
    (rows, total)
}

/// The usage chart: a line of the stored bytes of each measured day, drawn in a
/// 600 × 160 box (server-rendered SVG; no script).
pub struct UsageChart {
    /// The line's path (`M x y L x y …`; a day without a measurement breaks it).
    pub path: String,
    /// Each measured day: x, y and its words for the tooltip.
    pub points: Vec<(u32, u32, String)>,
    /// The top of the scale, and the y of the quota line when it fits on the chart.
    pub top: u64,
    pub quota_y: Option<u32>,
    pub first_day: String,
    pub last_day: String,
}

const CHART_WIDTH: u32 = 600;
const CHART_HEIGHT: u32 = 160;

impl UsageChart {
    fn new(report: &UsageReport, bytes: impl Fn(u64) -> String) -> Option<Self> {
        let last = report.history.last()?;
        let last_day: jiff::civil::Date = last.day.parse().ok()?;
        let first_day = last_day
            .checked_sub(jiff::Span::new().days(i64::from(CHART_DAYS) - 1))
            .ok()?;
        let highest = report.history.iter().map(|d| d.stored_bytes).max().unwrap_or(0);
        // The scale shows the quota when usage is near it, else the usage itself.
        let mut top = (highest + highest / 4).max(1);
        let quota_shown = report.quota_bytes > 0 && report.quota_bytes <= highest.saturating_mul(2);
        if quota_shown {
            top = top.max(report.quota_bytes + report.quota_bytes / 20);
        }
        let y_of = |value: u64| -> u32 {
            let fraction = u128::from(value) * u128::from(CHART_HEIGHT) / u128::from(top);
            CHART_HEIGHT - u32::try_from(fraction).unwrap_or(CHART_HEIGHT).min(CHART_HEIGHT)
        };
        let x_of = |index: i64| -> u32 {
            u32::try_from(index * i64::from(CHART_WIDTH) / (i64::from(CHART_DAYS) - 1)).unwrap_or(0)
        };
        let mut path = String::new();
        let mut points = Vec::new();
        let mut previous: Option<i64> = None;
        for day in &report.history {
            let Ok(date) = day.day.parse::<jiff::civil::Date>() else {
                continue;
            };
            let Ok(span) = first_day.until(date) else {
                continue;
            };
            let index = i64::from(span.get_days());
            if !(0..i64::from(CHART_DAYS)).contains(&index) {
                continue;
            }
            let (x, y) = (x_of(index), y_of(day.stored_bytes));
            let joined = previous == Some(index - 1);
            path.push_str(&format!("{}{x} {y} ", if joined { "L" } else { "M" }));
            points.push((x, y, format!("{}: {}", day.day, bytes(day.stored_bytes))));
            previous = Some(index);
        }
        Some(UsageChart {
            path: path.trim_end().to_owned(),
            points,
            top,
            quota_y: quota_shown.then(|| y_of(report.quota_bytes)),
            first_day: first_day.to_string(),
            last_day: last.day.clone(),
        })
    }
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    v: Viewer,
    usage: UsageReport,
    chart: Option<UsageChart>,
    backups: Vec<BackupRow>,
    /// All rows, of which `backups` shows the first.
    backups_total: usize,
    overdue: Vec<String>,
    /// The latest run of each plan on each active machine, with the machine's name.
    plan_runs: Vec<(String, RunRecord)>,
    /// The tenant's open alerts, the latest first.
    open_alerts: Vec<AlertRow>,
    events: Vec<EventRecord>,
    /// Notices unread, or whose maintenance window is near: the banner's rows.
    banner: Vec<super::notices::NoticeRow>,
}

impl DashboardPage {
    fn quota_warning(&self) -> bool {
        self.usage.percent() >= QUOTA_WARNING_PERCENT
    }

    /// The width of the usage bar (0–200).
    fn bar_width(&self) -> u64 {
        self.usage.percent().min(100) * 2
    }

    fn backups_more(&self) -> String {
        self.v.tr.t2(
            "dashboard-backups-more",
            ("shown", &self.backups.len()),
            ("total", &self.backups_total),
        )
    }

    fn chart_scale(&self, chart: &UsageChart) -> String {
        self.v.tr.t2(
            "usage-chart-scale",
            ("top", &self.v.tr.bytes(&chart.top)),
            ("quota", &self.v.tr.bytes(&self.usage.quota_bytes)),
        )
    }

    /// The history newest first, for the chart's table.
    fn days_newest_first(&self) -> Vec<&UsageDay> {
        self.usage.history.iter().rev().collect()
    }
}

/// `GET /`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    let usage = match usage::report(&state.service, &v.user, CHART_DAYS).await {
        Ok(usage) => usage,
        Err(err) => return v.error_page(&err, "/"),
    };
    let machines = match machines::overview(&state.service, &v.user).await {
        Ok(machines) => machines,
        Err(err) => return v.error_page(&err, "/"),
    };
    let events = if v.may(Permission::ReadEvents) {
        match events::recent(&state.service, &v.user, RECENT_EVENTS).await {
            Ok(events) => events,
            Err(err) => return v.error_page(&err, "/"),
        }
    } else {
        Vec::new()
    };
    let open = AlertFilter {
        open: Some(true),
        limit: OPEN_ALERTS,
        ..AlertFilter::default()
    };
    let open_alerts = match alerts::rows(&state.service, &v, open).await {
        Ok(rows) => rows,
        Err(err) => return v.error_page(&err, "/"),
    };
    let overdue = machines
        .iter()
        .filter(|o| o.overdue(v.now_ms, OVERDUE_MS))
        .map(|o| o.machine.name.clone())
        .collect();
    let banner = match super::notices::banner(&state.service, &v).await {
        Ok(banner) => banner,
        Err(err) => return v.error_page(&err, "/"),
    };
    let plan_runs = plan_run_rows(&machines);
    let (backups, backups_total) = backup_rows(machines, v.now_ms);
    let chart = UsageChart::new(&usage, |n| v.tr.bytes(&n));
    render(
        StatusCode::OK,
        &DashboardPage {
            v,
            usage,
            chart,
            backups,
            backups_total,
            overdue,
            plan_runs,
            open_alerts,
            events,
            banner,
        },
    )
}

/// The latest run of each plan on each machine, those that need attention first
/// (failed, missed, partly failed), then running ones, then the rest; newest first within.
fn plan_run_rows(machines: &[MachineOverview]) -> Vec<(String, RunRecord)> {
    let urgency = |status: RunStatus| match status {
        RunStatus::Failed | RunStatus::Missed => 0,
        RunStatus::Partial => 1,
        RunStatus::Running => 2,
        RunStatus::Skipped | RunStatus::Succeeded => 3,
    };
    let mut rows: Vec<(String, RunRecord)> = machines
        .iter()
        .filter(|o| o.machine.revoked_ms.is_none())
        .flat_map(|o| o.plan_runs.iter().map(|r| (o.machine.name.clone(), r.clone())))
        .collect();
    rows.sort_by_key(|(_, r)| (urgency(r.status), std::cmp::Reverse(r.scheduled_ms)));
    rows
}

#[derive(Template)]
#[template(path = "portal/contract.html")]
struct ContractPage {
    v: Viewer,
    usage: UsageReport,
    agent_networks: String,
}

/// `GET /contract`.
pub(super) async fn contract(State(state): State<AppState>, v: Viewer) -> Response {
    let usage = match usage::report(&state.service, &v.user, 1).await {
        Ok(usage) => usage,
        Err(err) => return v.error_page(&err, "/"),
    };
    let agent_networks = v
        .tenant
        .agent_networks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    render(
        StatusCode::OK,
        &ContractPage {
            v,
            usage,
            agent_networks,
        },
    )
}
