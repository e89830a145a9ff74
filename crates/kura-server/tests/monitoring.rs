//! Monitoring from outside: `/metrics` wants the scrape token and reports the process,
//! the data directory and the service (tenants with stored bytes and quotas, sessions,
//! jobs, the outbox, bytes per listener), on SQLite and PostgreSQL; a real Prometheus
//! (Debian's `prometheus`) scrapes it over TLS with the token file and answers the
//! series through its own query API; the scrape config, alert rules and dashboard in
//! `dist/` pass `promtool` (the rules' unit tests too) and name only metrics the server
//! exports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kura_testing::agent::Agent;
use kura_testing::{TestServer, parts};
use serde_json::{Value, json};

const TOKEN: &str = "scrape-2f9c61e07b4d4a8e93c5d1f0";
const QUOTA: u64 = 50 * 1024 * 1024 * 1024;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server whose `/metrics` wants [`TOKEN`] from a file in `dir`.
async fn server_with_scrape_token(dir: &Path, postgres: bool) -> TestServer {
    let token_file = dir.join("metrics-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let adjust = move |config: &mut kura_server::ServerConfig| {
        kura_testing::prompt_jobs(config);
        config.metrics_token_file = Some(token_file);
    };
    if postgres {
        kura_testing::start_on_postgres(adjust).await
    } else {
        kura_testing::start(adjust).await
    }
}

async fn scrape(server: &TestServer, token: Option<&str>) -> (u16, String) {
    let mut request = server.http.get(format!("{}/metrics", server.management));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of one series (`name{labels}` exactly as exported).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// A tenant with a quota, a machine that stored a snapshot, a signed-in admin and one
/// finished metering job; answers the tenant's stored bytes as the portal reports them.
async fn activity(server: &TestServer) -> u64 {
    let created = server
        .create_tenant("MON-0001", 3, json!({ "quota_bytes": QUOTA }))
        .await;
    let agent = Agent::register(server, created["registration_token"].as_str().unwrap(), "db-01").await;
    agent.create_vault().await;
    agent
        .backup("etc", &[b"hostname", b"a larger file of configuration"])
        .await;
    let admin = server
        .login(
            created["admin_login"].as_str().unwrap(),
            created["admin_password"].as_str().unwrap(),
        )
        .await;
    let (status, usage) = admin.get("/api/v1/usage").await;
    assert_eq!(status, 200, "{usage}");
    let job = server.run_job("meter", created["tenant_id"].as_str()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    usage["stored_bytes"].as_u64().unwrap()
}

async fn metrics_want_the_token_and_report_the_service(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_scrape_token(dir.path(), postgres).await;
    let (status, body) = scrape(&server, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("metrics_token_file"), "{body}");
    assert_eq!(scrape(&server, Some("scrape-token-of-someone-else")).await.0, 401);
    // The operator token is not the scrape token.
    assert_eq!(scrape(&server, Some(&server.operator_token.clone())).await.0, 401);

    let stored = activity(&server).await;
    assert!(stored > 0);
    let (status, text) = scrape(&server, Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let tenant = |name: &str| value(&text, &format!("{name}{{tenant=\"MON-0001\"}}"));
    assert_eq!(tenant("kura_tenant_stored_bytes"), stored as f64);
    assert_eq!(tenant("kura_tenant_quota_bytes"), QUOTA as f64);
    assert_eq!(value(&text, "kura_stored_bytes"), stored as f64);
    assert_eq!(value(&text, "kura_tenants{status=\"active\"}"), 1.0);
    assert_eq!(value(&text, "kura_tenants{status=\"terminated\"}"), 0.0);
    assert_eq!(value(&text, "kura_sessions_active{kind=\"portal\"}"), 1.0);
    assert_eq!(value(&text, "kura_sessions_active{kind=\"console\"}"), 0.0);
    assert_eq!(value(&text, "kura_outbox_pending"), 0.0);
    assert!(value(&text, "kura_http_received_bytes_total{listener=\"customer\"}") >= stored as f64);
    assert!(value(&text, "kura_http_sent_bytes_total{listener=\"management\"}") > 0.0);
    let size = value(&text, "kura_data_dir_size_bytes");
    let free = value(&text, "kura_data_dir_free_bytes");
    assert!(size > 0.0 && free > 0.0 && free <= size, "{size} {free}");
    assert!(value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(value(&text, "process_open_fds") >= 3.0);
    assert!(value(&text, "process_max_fds") >= value(&text, "process_open_fds"));
    assert!(value(&text, "process_cpu_seconds_total") > 0.0);
    let started = value(&text, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started <= now + 1.0 && now - started < 3600.0, "{started} {now}");
    // Durations are histograms, so Prometheus can sum them across servers.
    assert!(
        text.contains("kura_job_duration_seconds_bucket{kind=\"meter\",status=\"succeeded\",le=\"0.005\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE kura_http_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_want_the_token_and_report_the_service_on_sqlite() {
    metrics_want_the_token_and_report_the_service(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_want_the_token_and_report_the_service_on_postgres() {
    metrics_want_the_token_and_report_the_service(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_or_short_scrape_token_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    for (file, wanted) in [
        (dir.path().join("absent"), "cannot read it"),
        (short, "at least 16 characters"),
    ] {
        let mut config = kura_server::ServerConfig::with_data_dir(dir.path().join("data"));
        config.customer_listen = "127.0.0.1:0".parse().unwrap();
        config.management_listen = "127.0.0.1:0".parse().unwrap();
        config.metrics_token_file = Some(file.clone());
        let err = kura_server::Server::start(config).await.err().expect("refused");
        let message = err.to_string();
        assert!(
            message.contains("metrics_token_file") && message.contains(wanted),
            "{message}"
        );
    }
}

/// A Prometheus server in its own directory, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> &str {
    assert!(
        Command::new(name).arg("--version").output().is_ok(),
        "{name} is missing: run scripts/test.sh, which installs Debian's prometheus package"
    );
    name
}

/// Starts Prometheus scraping the server's management listener every second, over TLS
/// (trusting the server's CA) with the scrape token from a file, as `dist/` advises.
fn start_prometheus(server: &TestServer, token_file: &Path) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let port = kura_testing::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kura\n    \
         scheme: https\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      \
         credentials_file: {token}\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      \
         - targets: ['localhost:{target}']\n",
        token = token_file.display(),
        ca = server.server.ca_cert().unwrap().display(),
        target = server.server.management_addr().port(),
    );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Asks Prometheus until the query answers a sample (30 s at most); the first value.
async fn query(prometheus: &Prometheus, promql: &str) -> f64 {
    let http = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(response) = http
            .get(format!(
                "{}/api/v1/query?{}",
                prometheus.url,
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("query", promql)
                    .finish()
            ))
            .send()
            .await
        {
            let (status, body) = parts(response).await;
            if status == 200
                && let Some(sample) = body["data"]["result"].get(0)
            {
                return sample["value"][1].as_str().unwrap().parse().unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Prometheus never answered {promql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_server_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_scrape_token(dir.path(), false).await;
    let stored = activity(&server).await;
    let prometheus = start_prometheus(&server, &dir.path().join("metrics-token"));
    assert_eq!(query(&prometheus, "up{job=\"kura\"} == 1").await, 1.0);
    assert_eq!(
        query(&prometheus, "kura_tenant_stored_bytes{tenant=\"MON-0001\"}").await,
        stored as f64
    );
    assert!(query(&prometheus, "process_resident_memory_bytes{job=\"kura\"}").await > 1e6);
    assert!(query(&prometheus, "kura_data_dir_free_bytes / kura_data_dir_size_bytes").await > 0.0);
    assert_eq!(
        query(
            &prometheus,
            "sum(kura_jobs_total{kind=\"meter\",status=\"succeeded\"})"
        )
        .await,
        1.0
    );
    assert!(
        query(
            &prometheus,
            "sum(kura_http_requests_total{listener=\"management\",route=\"/metrics\",status=\"200\"})"
        )
        .await
            >= 1.0
    );
}

#[test]
fn the_dist_prometheus_files_pass_promtool() {
    let dist = workspace().join("dist/prometheus");
    for args in [
        vec!["check", "rules", "kura-alerts.yml"],
        vec!["test", "rules", "kura-alerts.test.yml"],
    ] {
        let output = Command::new(tool("promtool"))
            .args(&args)
            .current_dir(&dist)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every `kura_*` and `process_*` metric the alert rules and the dashboard name is one
/// the server exports (histograms by their `_bucket`/`_sum`/`_count` series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dist_files_name_only_metrics_the_server_exports() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_scrape_token(dir.path(), false).await;
    activity(&server).await;
    let (_, exported) = scrape(&server, Some(TOKEN)).await;
    let families: Vec<&str> = exported
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    let root = workspace();
    let mut named = Vec::new();
    for file in ["dist/prometheus/kura-alerts.yml", "dist/grafana/kura.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (at, _) in text.match_indices(['k', 'p']) {
            let rest = &text[at..];
            if !(rest.starts_with("kura_") || rest.starts_with("process_")) {
                continue;
            }
            if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            named.push((file, name));
        }
    }
    assert!(named.len() > 10, "{named:?}");
    let unknown: Vec<_> = named
        .iter()
        .filter(|(_, name)| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !families.contains(&family) && !families.contains(&name.as_str())
        })
        .collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}\n{exported}");
    let _: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("dist/grafana/kura.json")).unwrap())
            .expect("the dashboard is JSON");
}
