//! A real server on loopback ports chosen by the OS, and HTTPS clients that trust its
//! generated CA.

use std::path::Path;

use kura_server::{RunningServer, Server, ServerConfig};
use serde_json::{Value, json};

use crate::postgres::PgSchema;

pub struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
    pub operator_token: String,
    pub customer: String,
    pub management: String,
    _data: tempfile::TempDir,
    _schema: Option<PgSchema>,
}

/// Starts a server whose service database is a fresh PostgreSQL schema.
pub async fn start_on_postgres(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let schema = PgSchema::create("it").await;
    let url = schema.url();
    let mut server = start(|config| {
        config.database_url = Some(url);
        adjust(config);
    })
    .await;
    server._schema = Some(schema);
    server
}

/// A config adjustment for job tests: jobs start within a tenth of a second, and no
/// periodic round (gc, verify, expiry, metering) interferes.
pub fn prompt_jobs(config: &mut ServerConfig) {
    config.job_tick = std::time::Duration::from_millis(100);
    config.gc_interval = std::time::Duration::ZERO;
    config.verify_interval = std::time::Duration::ZERO;
    config.expiry_interval = std::time::Duration::ZERO;
    config.meter_interval = std::time::Duration::ZERO;
}

/// Starts a server on SQLite in a fresh directory; `adjust` may change the config.
pub async fn start(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_in(tempfile::tempdir().unwrap(), adjust).await
}

/// Starts a server keeping its data in `data` (which may hold a service already).
pub async fn start_in(data: tempfile::TempDir, adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig::with_data_dir(data.path());
    config.customer_listen = "127.0.0.1:0".parse().unwrap();
    config.management_listen = "127.0.0.1:0".parse().unwrap();
    adjust(&mut config);
    let server = Server::start(config).await.unwrap();
    // A database that had operators already gets no bootstrap token (and no file).
    let operator_token = std::fs::read_to_string(data.path().join("operator-token"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let http = client_trusting(server.ca_cert().unwrap());
    TestServer {
        customer: format!("https://localhost:{}", server.customer_addr().port()),
        management: format!("https://localhost:{}", server.management_addr().port()),
        server,
        http,
        operator_token,
        _data: data,
        _schema: None,
    }
}

impl TestServer {
    /// Queues a job through the operator API and follows it to its end (at most 60 s).
    pub async fn run_job(&self, kind: &str, tenant_id: Option<&str>) -> Value {
        let (status, job) = self
            .operator(
                reqwest::Method::POST,
                "/api/v1/operator/jobs",
                Some(json!({ "kind": kind, "tenant_id": tenant_id })),
            )
            .await;
        assert_eq!(status, 202, "{job}");
        self.finished_job(job["id"].as_str().unwrap()).await
    }

    /// Follows an operator's job to its end (at most 60 s): the finished job.
    pub async fn finished_job(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self
                .operator(reqwest::Method::GET, &format!("/api/v1/operator/jobs/{id}"), None)
                .await;
            assert_eq!(status, 200, "{job}");
            if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("job {id} did not finish within 60 s");
    }
}

/// A loopback port free a moment ago (bound and released: another process may take it
/// first, which a test then sees as a failure to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client_trusting(ca_cert: &Path) -> reqwest::Client {
    builder_trusting(ca_cert).build().unwrap()
}

/// A client builder that trusts only the server's CA (tests add their own settings).
pub fn builder_trusting(ca_cert: &Path) -> reqwest::ClientBuilder {
    kura_server::tls::install_crypto_provider();
    let pem = std::fs::read(ca_cert).unwrap();
    reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
}

/// Status and JSON body (or `Value::Null` when the body is not JSON).
pub async fn parts(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl TestServer {
    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }

    pub async fn operator(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.management))
            .bearer_auth(&self.operator_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        parts(request.send().await.unwrap()).await
    }

    /// Creates a tenant; returns the creation answer.
    pub async fn create_tenant(&self, code: &str, max_machines: u32, extra: Value) -> Value {
        let mut body = json!({
            "service_code": code,
            "name": format!("{code} Corp"),
            "quota_bytes": 1u64 << 40,
            "max_machines": max_machines,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let (status, created) = self
            .operator(reqwest::Method::POST, "/api/v1/operator/tenants", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        created
    }

    pub async fn register(&self, token: &str, name: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/agents/register", self.customer))
            .json(&json!({ "token": token, "name": name }))
            .send()
            .await
            .unwrap();
        parts(response).await
    }

    pub async fn whoami(&self, credential: &str) -> (u16, Value) {
        self.agent_get(credential, "/api/v1/agent/whoami").await
    }

    /// A `GET` of the customer API with an agent's credential.
    pub async fn agent_get(&self, credential: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.customer))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        parts(response).await
    }

    pub async fn new_registration_token(&self, tenant_id: &str) -> String {
        let path = format!("/api/v1/operator/tenants/{tenant_id}/registration-tokens");
        let (status, body) = self.operator(reqwest::Method::POST, &path, None).await;
        assert_eq!(status, 201, "{body}");
        body["registration_token"].as_str().unwrap().to_owned()
    }
}

pub fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {body}"))
}
