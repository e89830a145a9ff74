//! Monitoring on the management listener: `/healthz` for load balancers and `/metrics`
//! for Prometheus. The metrics the code counts as it runs (requests, jobs, uploads) come
//! from the `metrics` recorder; what is read at each scrape (the process, the data
//! directory, the service's tenants, sessions, runs, jobs and outbox) is appended here.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kura_service::model::RunStatus;
use kura_service::ops::monitoring::{ServiceGauges, TenantGauge};

use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::error::ApiError;

/// `GET /healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`, or `failing` (with `503`) when the database or the storage does not answer.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// Where the vaults are: a directory, or `s3://BUCKET`.
    storage: String,
    /// Whether the kernel reports the clock synchronised by NTP (every log time depends
    /// on it); absent where the kernel cannot say. Also the metric `kura_clock_synchronized`.
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_synchronized: Option<bool>,
    /// What failed, and what to check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

/// The database and the object store answer; the host clock is synchronised. For load
/// balancers (`503` while failing) and monitoring.
#[utoipa::path(get, path = "/healthz", tag = "monitoring",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(super) async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut problems = Vec::new();
    if let Err(err) = kura_service::ops::operators::ping(&state.service).await {
        problems.push(format!("database: {err}"));
    }
    let storage = state.service.vaults.probe().await.unwrap_or_else(|err| {
        problems.push(err.to_string());
        String::new()
    });
    let clock_synchronized = crate::host::clock_synchronized();
    let (code, status) = if problems.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    };
    let health = Health {
        status,
        database: state.service.db.backend(),
        storage,
        clock_synchronized,
        problems,
    };
    (code, Json(health)).into_response()
}

/// Prometheus text format: the counters and histograms of this process, and the figures
/// read now (see `docs/monitoring.md` for the list). Wants the scrape token as Bearer when
/// `metrics_token_file` is set, else a caller inside `operator_networks` when that is set.
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 401, description = "the scrape token is missing or wrong"),
        (status = 403, description = "no scrape token is configured and the caller is outside operator_networks"),
    ))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit_scrape(&state, &headers, caller.source)?;
    let gauges = kura_service::ops::monitoring::gauges(&state.service).await?;
    let mut text = state.metrics.render();
    let mut out = Exposition(&mut text);
    process_figures(&mut out);
    data_dir_figures(&mut out, &state.config.data_dir);
    service_figures(&mut out, &gauges);
    if let Some(synced) = crate::host::clock_synchronized() {
        out.family(
            "kura_clock_synchronized",
            "gauge",
            "1 while the kernel reports the clock synchronised by NTP",
        )
        .sample("kura_clock_synchronized", &[], f64::from(u8::from(synced)));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

fn admit_scrape(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    if let Some(expected) = &state.scrape_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        // Hashes compare in constant time, so the comparison leaks nothing of the token.
        return match given {
            Some(token) if blake3::hash(token.trim().as_bytes()) == *expected => Ok(()),
            _ => Err(ApiError::unauthorized(
                "send the scrape token (the content of metrics_token_file) as Authorization: Bearer",
            )),
        };
    }
    let networks = &state.config.operator_networks;
    if networks.is_empty() || client.is_some_and(|ip| networks.iter().any(|net| net.contains(&ip))) {
        return Ok(());
    }
    let from = client.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    Err(ApiError::forbidden(format!(
        "metrics are not served to {from}: scrape from inside operator_networks, or set metrics_token_file"
    )))
}

/// Appends metric families in the Prometheus text format.
struct Exposition<'a>(&'a mut String);

impl Exposition<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(label, value)| format!("{label}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
        self
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// CPU time, resident memory, open files and start time of this process, from `/proc`.
fn process_figures(out: &mut Exposition<'_>) {
    let Some(process) = crate::host::process_usage() else {
        return;
    };
    out.family(
        "process_cpu_seconds_total",
        "counter",
        "CPU time of the server process (user and system)",
    )
    .sample("process_cpu_seconds_total", &[], process.cpu_seconds)
    .family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the server process",
    )
    .sample(
        "process_resident_memory_bytes",
        &[],
        process.resident_bytes as f64,
    )
    .family(
        "process_open_fds",
        "gauge",
        "Open file descriptors of the server process",
    )
    .sample("process_open_fds", &[], process.open_fds as f64)
    .family("process_max_fds", "gauge", "The limit on open file descriptors")
    .sample("process_max_fds", &[], process.max_fds as f64)
    .family(
        "process_start_time_seconds",
        "gauge",
        "When the server process started (Unix time)",
    )
    .sample("process_start_time_seconds", &[], process.start_time_seconds);
}

/// Size and free space of the file system holding the data directory.
fn data_dir_figures(out: &mut Exposition<'_>, data_dir: &std::path::Path) {
    let Some((size, free)) = crate::host::file_system_space(data_dir) else {
        return;
    };
    out.family(
        "kura_data_dir_size_bytes",
        "gauge",
        "Size of the file system holding the data directory",
    )
    .sample("kura_data_dir_size_bytes", &[], size as f64)
    .family(
        "kura_data_dir_free_bytes",
        "gauge",
        "Bytes the service may still write there",
    )
    .sample("kura_data_dir_free_bytes", &[], free as f64);
}

/// One figure of a tenant, for a per-tenant metric family.
type TenantFigure = fn(&TenantGauge) -> u64;

fn service_figures(out: &mut Exposition<'_>, gauges: &ServiceGauges) {
    let total: u64 = gauges.tenants.iter().map(|tenant| tenant.stored_bytes).sum();
    out.family(
        "kura_stored_bytes",
        "gauge",
        "Bytes stored in every vault (after dedup and compression)",
    )
    .sample("kura_stored_bytes", &[], total as f64);
    let per_tenant: [(&str, &str, TenantFigure); 2] = [
        (
            "kura_tenant_stored_bytes",
            "Bytes stored in the tenant's vault",
            |tenant| tenant.stored_bytes,
        ),
        (
            "kura_tenant_quota_bytes",
            "The tenant's storage quota (0: none)",
            |tenant| tenant.quota_bytes,
        ),
    ];
    for (name, help, figure) in per_tenant {
        out.family(name, "gauge", help);
        for tenant in &gauges.tenants {
            out.sample(name, &[("tenant", &tenant.service_code)], figure(tenant) as f64);
        }
    }
    out.family("kura_tenants", "gauge", "Tenants by status");
    for status in ["active", "suspended", "terminated"] {
        let count = gauges
            .tenants
            .iter()
            .filter(|tenant| tenant.status.as_str() == status)
            .count();
        out.sample("kura_tenants", &[("status", status)], count as f64);
    }
    out.family(
        "kura_sessions_active",
        "gauge",
        "Signed-in portal and console sessions",
    )
    .sample(
        "kura_sessions_active",
        &[("kind", "portal")],
        gauges.portal_sessions as f64,
    )
    .sample(
        "kura_sessions_active",
        &[("kind", "console")],
        gauges.console_sessions as f64,
    );
    // Every result, zero included, so an alert on a change sees the first failure.
    out.family("kura_backup_runs", "gauge", "Recorded backup runs by result");
    for result in RunStatus::ALL {
        let count = count_of(&gauges.backup_runs, result.as_str());
        out.sample("kura_backup_runs", &[("result", result.as_str())], count as f64);
    }
    labelled(
        out,
        "kura_jobs_waiting",
        "Queued jobs by kind",
        "kind",
        &gauges.waiting_jobs,
    );
    let outbox = |status: &str| count_of(&gauges.outbox, status);
    out.family("kura_outbox_pending", "gauge", "Mails waiting to be sent")
        .sample("kura_outbox_pending", &[], outbox("pending") as f64)
        .family(
            "kura_outbox_failed",
            "gauge",
            "Mails given up on (kept until pruned)",
        )
        .sample("kura_outbox_failed", &[], outbox("failed") as f64);
}

fn count_of(counts: &[(String, u64)], wanted: &str) -> u64 {
    counts
        .iter()
        .find(|(label, _)| label == wanted)
        .map_or(0, |(_, count)| *count)
}

fn labelled(out: &mut Exposition<'_>, name: &str, help: &str, label: &str, counts: &[(String, u64)]) {
    out.family(name, "gauge", help);
    for (value, count) in counts {
        out.sample(name, &[(label, value)], *count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values() {
        let mut text = String::new();
        Exposition(&mut text)
            .family("x", "gauge", "help")
            .sample("x", &[("tenant", "a\"b\\c\nd")], 2.5);
        assert_eq!(
            text,
            "# HELP x help\n# TYPE x gauge\nx{tenant=\"a\\\"b\\\\c\\nd\"} 2.5\n"
        );
    }
}
