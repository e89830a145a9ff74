//! Starting and stopping the service: the database, TLS, and the two listeners, each with
//! its own router, so that operator routes and metrics simply do not exist on the
//! customer-facing socket.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::RequestExt;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawPathParams, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use kura_service::audit::Action;
use kura_service::db::{Db, DbError};
use kura_service::ids::TenantId;
use kura_service::jobs::MetadataBackupTask;
use kura_service::secrets::{ServiceKey, TokenKind, new_token, random_hex, write_private_file};
use kura_service::vaults::{ObjectStorage, TenantVaults, VaultStorage, VaultsError};
use kura_service::{Clock, Service, ServiceError, Settings, ops};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;

use crate::api;
use crate::auth::{OperatorSlot, RequestId};
use crate::config::{ObjectStoreKind, ServerConfig};
use crate::error::ApiError;
use crate::jobs::{JobRunner, RunnerSettings};
use crate::mail::Mailer;
use crate::metadata::ScheduledBackup;
use crate::tls::{self, TlsError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Vaults(#[from] VaultsError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("metrics_token_file {path}: {message}")]
    ScrapeToken { path: PathBuf, message: String },
    #[error("service_key: {0}")]
    Key(String),
    #[error("{0}")]
    MetadataBackup(String),
    #[error("{listener} listener failed: {source}")]
    Serve {
        listener: &'static str,
        source: std::io::Error,
    },
    #[error("{listener} listener task panicked or was cancelled")]
    Task { listener: &'static str },
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Every decision of the service: operations, scopes, the database, the vaults.
    pub service: Service,
    pub config: Arc<ServerConfig>,
    pub metrics: PrometheusHandle,
    /// The hash of the token `/metrics` wants (`metrics_token_file`), if one is set.
    pub scrape_token: Option<blake3::Hash>,
}

impl AppState {
    /// The service's clock (tests move it forward).
    pub fn clock(&self) -> &Clock {
        &self.service.clock
    }
}

/// The service's rules, from the configuration.
fn settings(config: &ServerConfig) -> Settings {
    Settings {
        registration_token_ttl: config.registration_token_ttl,
        default_region: config.default_region.clone(),
        session_idle_timeout: config.session_idle_timeout,
        session_absolute_timeout: config.session_absolute_timeout,
        login_throttle_after: config.login_throttle_after,
        login_lockout_after: config.login_lockout_after,
        login_source_lockout_after: config.login_source_lockout_after,
        login_lockout_period: config.login_lockout_period,
        mail_enabled: !config.smtp_url.expose().is_empty(),
        gc_interval: config.gc_interval,
        verify_interval: config.verify_interval,
        expiry_interval: config.expiry_interval,
        meter_interval: config.meter_interval,
        metadata_backup_interval: config.metadata_backup_interval,
        operator_networks: config.operator_networks.clone(),
    }
}

/// Where the vaults live, from the configuration.
pub fn vault_storage(config: &ServerConfig) -> VaultStorage {
    VaultStorage {
        database_url: config.effective_database_url(),
        data_dir: config.data_dir.clone(),
        objects: match config.object_store {
            ObjectStoreKind::Local => ObjectStorage::Local,
            ObjectStoreKind::S3 => ObjectStorage::S3 {
                endpoint: config.s3_endpoint.clone(),
                region: config.s3_region.clone(),
                bucket: config.s3_bucket.clone(),
                access_key: config.s3_access_key.clone(),
                secret_key: config.s3_secret_key.expose().to_owned(),
                allow_http: config.s3_allow_http,
            },
        },
    }
}

/// Entry point: `Server::start(config)`.
pub struct Server;

impl Server {
    /// Opens the database (migrating it), prepares TLS, binds both listeners and starts
    /// serving. On a fresh database it also issues a bootstrap operator token into
    /// `DATA/operator-token` (mode 0600).
    pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
        tls::install_crypto_provider();
        let data_dir_error = |source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        };
        let was_open = keep_private(&config.data_dir).map_err(data_dir_error)?;
        let db = Db::connect(&config.effective_database_url()).await?;
        if was_open {
            restrict_existing(&config.data_dir).map_err(data_dir_error)?;
        }
        let tls = tls::load_or_generate(&config)?;
        let customer_listener = bind(config.customer_listen)?;
        let management_listener = bind(config.management_listen)?;
        let customer_addr = local_addr(&customer_listener, config.customer_listen)?;
        let management_addr = local_addr(&management_listener, config.management_listen)?;

        let clock = Clock::default();
        let service = Service {
            db: db.clone(),
            vaults: Arc::new(TenantVaults::connect(&vault_storage(&config)).await?),
            clock: clock.clone(),
            settings: Arc::new(settings(&config)),
            mail: Arc::new(Mailer::from_config(&config)?),
            public_url: config
                .public_url
                .as_deref()
                .map_or_else(
                    || format!("https://localhost:{}", customer_addr.port()),
                    |url| url.trim_end_matches('/').to_owned(),
                )
                .into(),
            console_url: config
                .console_url
                .as_deref()
                .map_or_else(
                    || crate::quickstart::https_url(management_addr),
                    |url| url.trim_end_matches('/').to_owned(),
                )
                .into(),
            work_queued: Arc::default(),
            key: Arc::new(service_key(&config)?),
            metadata_backup: ScheduledBackup::from_config(&config, &clock)
                .map_err(ServerError::MetadataBackup)?
                .map(|task| Arc::new(task) as Arc<dyn MetadataBackupTask>),
        };
        ops::totp::check_service_key(&service).await?;
        let sealed = ops::totp::seal_plain_secrets(&service).await?;
        if sealed > 0 {
            tracing::info!(
                users = sealed,
                "sealed TOTP secrets stored in plain text by an earlier version"
            );
        }
        ensure_bootstrap_operator_token(&service, &config.data_dir).await?;
        let runner = JobRunner::start(
            service.clone(),
            RunnerSettings {
                tick: config.job_tick,
                lease: config.job_lease,
                workers: usize::try_from(config.job_workers).unwrap_or(usize::MAX),
                grace: config.shutdown_grace,
            },
        );
        let state = AppState {
            service,
            metrics: prometheus_handle(),
            scrape_token: scrape_token(&config)?,
            config: Arc::new(config),
        };
        let tls_config = RustlsConfig::from_config(tls.server_config);
        let customer_handle = Handle::new();
        let management_handle = Handle::new();
        let customer_task = serve(
            "customer",
            customer_listener,
            tls_config.clone(),
            customer_handle.clone(),
            customer_router(state.clone()),
        )?;
        let management_task = serve(
            "management",
            management_listener,
            tls_config,
            management_handle.clone(),
            management_router(state.clone()),
        )?;
        tracing::info!(
            %customer_addr,
            %management_addr,
            database = db.backend(),
            "kura-server listening"
        );
        Ok(RunningServer {
            customer_addr,
            management_addr,
            ca_cert: tls.ca_cert,
            shutdown: ShutdownHandle {
                handles: vec![customer_handle, management_handle],
                grace: state.config.shutdown_grace,
            },
            state,
            tasks: vec![("customer", customer_task), ("management", management_task)],
            runner,
        })
    }
}

/// A started server.
pub struct RunningServer {
    customer_addr: SocketAddr,
    management_addr: SocketAddr,
    ca_cert: Option<PathBuf>,
    state: AppState,
    shutdown: ShutdownHandle,
    tasks: Vec<(&'static str, JoinHandle<std::io::Result<()>>)>,
    runner: JobRunner,
}

impl RunningServer {
    /// The bound customer address (the real port when the config said 0).
    pub fn customer_addr(&self) -> SocketAddr {
        self.customer_addr
    }

    /// The bound management address.
    pub fn management_addr(&self) -> SocketAddr {
        self.management_addr
    }

    /// The generated CA certificate clients must trust; `None` with a configured
    /// certificate.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The service, for in-process setup (quickstart) and tests.
    pub fn service(&self) -> &Service {
        &self.state.service
    }

    /// What the handlers share, for in-process setup that follows the API's rules.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that can stop the server from elsewhere (e.g. a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The name this server's job leases carry.
    pub fn job_owner(&self) -> &str {
        self.runner.owner()
    }

    /// Waits until both listeners have stopped, then stops the job runner (running jobs
    /// get up to `shutdown_grace` to end).
    pub async fn wait(self) -> Result<(), ServerError> {
        let mut first_error = None;
        for (listener, task) in self.tasks {
            let outcome = match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(ServerError::Serve { listener, source }),
                Err(_) => Err(ServerError::Task { listener }),
            };
            if let Err(err) = outcome {
                // One listener failing takes the other down too: half a service is worse
                // than a clear failure.
                self.shutdown.shutdown();
                first_error.get_or_insert(err);
            }
        }
        self.runner.stop().await;
        first_error.map_or(Ok(()), Err)
    }

    /// Stops accepting connections, lets open requests finish (up to `shutdown_grace`),
    /// and waits for both listeners.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.shutdown();
        self.wait().await
    }
}

/// Triggers graceful shutdown of both listeners.
#[derive(Clone)]
pub struct ShutdownHandle {
    handles: Vec<Handle<SocketAddr>>,
    grace: Duration,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        for handle in &self.handles {
            handle.graceful_shutdown(Some(self.grace));
        }
    }
}

/// Service data and customer data are the provider's alone: the process creates every
/// file and directory for its owner only (umask 077, whatever it was started with), and
/// the data directory is `0700`. Answers whether the directory was open to others before,
/// which only a data directory of an earlier version is.
fn keep_private(data_dir: &Path) -> std::io::Result<bool> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(data_dir)?;
    let was_open = std::fs::metadata(data_dir)?.permissions().mode() & 0o077 != 0;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(was_open)
}

/// Files made by earlier versions under a looser umask: the service database and the
/// vaults become owner-only too. Walks every vault file, so it runs once, when the data
/// directory was found open, not at every start.
fn restrict_existing(data_dir: &Path) -> std::io::Result<()> {
    for name in ["service.db", "service.db-wal", "service.db-shm"] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    for top in ["vaults", "objects"] {
        restrict_tree(&data_dir.join(top))?;
    }
    Ok(())
}

fn restrict_tree(path: &Path) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
        for entry in std::fs::read_dir(path)? {
            restrict_tree(&entry?.path())?;
        }
    } else if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The key sealing stored secrets: `service_key` from the configuration, else
/// `DATA/service-key`, made (mode 0600) on first start.
fn service_key(config: &ServerConfig) -> Result<ServiceKey, ServerError> {
    load_service_key(config, true)
}

/// The service key of an installation that has run (for commands beside the service,
/// such as `kura-server deletion public-key`); never makes one.
pub fn existing_service_key(config: &ServerConfig) -> Result<ServiceKey, ServerError> {
    load_service_key(config, false)
}

fn load_service_key(config: &ServerConfig, create: bool) -> Result<ServiceKey, ServerError> {
    let configured = config.service_key.expose();
    let path = config.data_dir.join("service-key");
    let hex = if !configured.is_empty() {
        configured.to_owned()
    } else if path.exists() {
        std::fs::read_to_string(&path).map_err(|source| ServerError::Read {
            path: path.clone(),
            source,
        })?
    } else if !create {
        return Err(ServerError::Key(format!(
            "{} does not exist and the configuration sets no service_key: give the configuration or \
             data directory of a service that has started",
            path.display()
        )));
    } else {
        let hex = ServiceKey::generate_hex();
        write_private_file(&path, hex.as_bytes()).map_err(|source| ServerError::Write {
            path: path.clone(),
            source,
        })?;
        hex
    };
    ServiceKey::from_hex(&hex).map_err(|err| ServerError::Key(err.to_string()))
}

/// The file holding the bootstrap operator token.
pub fn operator_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("operator-token")
}

/// A fresh service has no operator yet: issue one token and leave it where only the
/// process owner can read it. Never logged.
async fn ensure_bootstrap_operator_token(service: &Service, data_dir: &Path) -> Result<(), ServerError> {
    if !ops::operators::none_issued(service).await? {
        return Ok(());
    }
    let token = new_token(TokenKind::Operator);
    let path = operator_token_path(data_dir);
    write_private_file(&path, format!("{token}\n").as_bytes()).map_err(|source| ServerError::Write {
        path: path.clone(),
        source,
    })?;
    ops::operators::register(service, "bootstrap", &token).await?;
    tracing::info!(path = %path.display(), "issued the bootstrap operator token");
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok(listener)
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })
}

fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: RustlsConfig,
    handle: Handle<SocketAddr>,
    router: Router,
) -> Result<JoinHandle<std::io::Result<()>>, ServerError> {
    let addr = local_addr(&listener, SocketAddr::from(([0, 0, 0, 0], 0)))?;
    // TCP_NODELAY: an answer leaves as several TLS records; with Nagle on, the second
    // waits for the client's delayed ACK of the first (up to 40 ms per request).
    let acceptor = RustlsAcceptor::new(tls).acceptor(NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener)
        .map_err(|source| ServerError::Bind { addr, source })?
        .acceptor(acceptor)
        .handle(handle);
    Ok(tokio::spawn(async move {
        let result = server
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await;
        tracing::info!(listener = name, "listener stopped");
        result
    }))
}

/// Customer listener: the portal, and the API of agents and tenant users.
fn customer_router(state: AppState) -> Router {
    let limit = body_limit(&state.config);
    api::customer_routes()
        .route_layer(middleware::from_fn_with_state("customer", track_request))
        .fallback(api::no_route_or_page)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, form_csrf_token))
        .layer(middleware::from_fn(crate::web::notice_shown))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(
            drain_limit(limit),
            crate::drain::drain_unread,
        ))
        .with_state(state)
}

/// How much of an unread request body is read before answering: a refused pack upload is
/// read to its end (at most a pack), so the client sees the refusal.
fn drain_limit(limit: usize) -> usize {
    limit.max(kura_api::vault::MAX_PACK_BYTES)
}

/// An HTML form cannot send headers, so a form's CSRF token comes as its hidden field
/// `csrf_token`: found here in a URL-encoded body of a state-changing request and handed
/// to the user extractor, which accepts it like the `X-CSRF-Token` header.
async fn form_csrf_token(State(limit): State<usize>, request: Request, next: Next) -> Response {
    use axum::http::{Method, StatusCode, header};
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !is_form || matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is too large: the limit is {limit} bytes"),
        )
        .into_response();
    };
    if let Some((_, token)) = form_urlencoded::parse(&bytes).find(|(name, _)| name == "csrf_token") {
        parts
            .extensions
            .insert(crate::auth::FormCsrfToken(token.into_owned()));
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Management listener: the operator console, operator API, metrics and health. Every
/// call an operator makes is written to the operator work log (and, about one tenant, to
/// that tenant's log).
fn management_router(state: AppState) -> Router {
    let limit = body_limit(&state.config);
    api::management_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), log_operator_call))
        .route_layer(middleware::from_fn_with_state("management", track_request))
        .fallback(api::no_route_or_page)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, form_csrf_token))
        .layer(middleware::from_fn(crate::web::notice_shown))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(
            drain_limit(limit),
            crate::drain::drain_unread,
        ))
        .with_state(state)
}

fn body_limit(config: &ServerConfig) -> usize {
    usize::try_from(config.max_body).unwrap_or(usize::MAX)
}

/// Gives every routed request an id (`X-Request-Id` in the answer), counts and times it,
/// labelled by route pattern (never the raw path, which would leak ids and explode the
/// label set), and logs it without headers.
async fn track_request(State(listener): State<&'static str>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = random_hex(8);
    let mut request = request.map(|body| counted(body, "kura_http_received_bytes_total", listener));
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }

    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    let labels = [
        ("listener", listener.to_owned()),
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.clone()),
    ];
    metrics::counter!("kura_http_requests_total", &labels).increment(1);
    metrics::histogram!("kura_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    tracing::info!(
        listener,
        method = %method,
        route,
        status,
        request_id,
        duration_ms = elapsed.as_millis() as u64,
        "request"
    );
    response.map(|body| counted(body, "kura_http_sent_bytes_total", listener))
}

/// Counts a body's bytes per listener as they pass (uploads and restores stream, so
/// their size is known only at the end).
fn counted(body: axum::body::Body, name: &'static str, listener: &'static str) -> axum::body::Body {
    axum::body::Body::new(CountedBody {
        inner: body,
        counter: metrics::counter!(name, "listener" => listener),
    })
}

struct CountedBody {
    inner: axum::body::Body,
    counter: metrics::Counter,
}

impl http_body::Body for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.increment(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The pages' Content-Security-Policy: scripts, styles and images from this origin only
/// (no inline script or style, no `eval`), forms post only here, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Both listeners speak only TLS, so browsers are told to keep it that way (HSTS); no
/// answer is stored by a browser or proxy unless it says otherwise (the static files):
/// many carry secrets (tokens, CSRF tokens, recovery codes). Pages may not be framed,
/// run only the service's own scripts, and leak no address to other sites (a reset link
/// carries its token in the URL).
async fn security_headers(request: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Writes each authenticated operator call to the operator work log and, when the
/// route's `{tenant_id}` parameter names an existing tenant, to that tenant's log, so a
/// tenant sees every operator action on it. Calls that did not authenticate are only in
/// the request log.
async fn log_operator_call(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let slot = OperatorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let tenant = match request.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .and_then(|(_, value)| TenantId::parse(value)),
        Err(_) => None,
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let caller = crate::auth::caller_of(request.extensions(), request.headers(), &state.config);
    let response = next.run(request).await;
    let Some(operator) = slot.take() else {
        return response;
    };
    let Some(action) = Action::operator_call(method.as_str()) else {
        return response;
    };
    let status = response.status().as_u16().to_string();
    match ops::operators::log_call(&state.service, &operator, &caller, action, &path, &status, tenant).await {
        Ok(()) => response,
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Reads the scrape token at start, so a missing or empty file stops the server with a
/// clear message instead of failing every scrape later.
fn scrape_token(config: &ServerConfig) -> Result<Option<blake3::Hash>, ServerError> {
    let Some(path) = &config.metrics_token_file else {
        return Ok(None);
    };
    let failed = |message: String| ServerError::ScrapeToken {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|err| failed(format!("cannot read it: {err}")))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(failed(
            "holds no token of at least 16 characters (e.g. `openssl rand -hex 32`)".to_owned(),
        ));
    }
    Ok(Some(blake3::hash(token.as_bytes())))
}

/// The Prometheus recorder is process-wide (the `metrics` facade has one global), so
/// several servers in one process (tests) share it.
fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Durations as histograms (summed across servers and routes in queries, unlike
            // summaries), with buckets from a fast page to an hour-long job.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                        900.0, 3600.0,
                    ],
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            // Counters that may stay at zero for long are exported from the start, so
            // rates and alerts see them before their first event.
            for name in [
                "kura_quota_refusals_total",
                "kura_snapshots_committed_total",
                "kura_vault_bytes_uploaded_total",
            ] {
                metrics::counter!(name).increment(0);
            }
            for kind in kura_service::model::JobKind::ALL {
                for status in ["succeeded", "failed"] {
                    metrics::counter!("kura_jobs_total", "kind" => kind.as_str(), "status" => status)
                        .increment(0);
                }
            }
            handle
        })
        .clone()
}
