//! `kura-server quickstart`: the whole service on SQLite and a local directory, with a
//! demo tenant ready for a first agent.
//!
//! The first start creates the TLS CA, an operator token, the tenant `DEMO-0001` with an
//! admin account and a registration token; later starts reuse them (issuing a new
//! registration token when the last one was used or expired). What must be shown again is
//! kept in `DATA/quickstart.json` and `DATA/operator-token`, both mode 0600: the demo's
//! secrets are only as safe as the data directory, which is why quickstart listens on
//! loopback by default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use kura_service::authz::{self, ContractScope, OperatorPrincipal};
use kura_service::ids::TenantId;
use kura_service::ops::{operators, tenants};
use kura_service::secrets::{TokenKind, new_token, write_private_file};
use kura_service::{Service, ServiceError};

use crate::api::types::CreateTenantRequest;
use crate::app::{RunningServer, Server, ServerError, operator_token_path};
use crate::config::ServerConfig;

/// The demo tenant's service code.
pub const DEMO_SERVICE_CODE: &str = "DEMO-0001";

/// Why quickstart could not get the service ready.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot set up the demo tenant: {0}")]
    Setup(#[from] ServiceError),
    #[error("cannot read or write {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(
        "the database already has a tenant {DEMO_SERVICE_CODE} but {path} is missing, so its admin password is unknown; use a fresh --data directory"
    )]
    StateLost { path: PathBuf },
}

/// Everything a person needs to try the service; printed at every start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickstartInfo {
    pub customer_url: String,
    pub management_url: String,
    /// The CA certificate clients pass as `--ca-cert`.
    pub ca_cert: PathBuf,
    pub operator_token: String,
    pub tenant_id: String,
    pub service_code: String,
    pub admin_login: String,
    pub admin_password: String,
    pub registration_token: String,
}

/// What quickstart keeps between starts (`DATA/quickstart.json`).
#[derive(Debug, Serialize, Deserialize)]
struct DemoState {
    tenant_id: String,
    admin_login: String,
    admin_password: String,
    registration_token: String,
}

/// The configuration quickstart runs with.
pub fn config(data_dir: &Path, customer_listen: SocketAddr, management_listen: SocketAddr) -> ServerConfig {
    ServerConfig {
        customer_listen,
        management_listen,
        ..ServerConfig::with_data_dir(data_dir)
    }
}

/// Starts the server and makes sure the demo tenant, operator token and a usable
/// registration token exist.
pub async fn start(config: ServerConfig) -> Result<(RunningServer, QuickstartInfo), QuickstartError> {
    let data_dir = config.data_dir.clone();
    let server = Server::start(config).await?;
    let service = server.service();
    let operator_token = ensure_operator_token(service, &data_dir).await?;
    // Quickstart acts as the operator whose token it holds, like any operator.
    let operator = authz::operator(service, &operator_token, &authz::Caller::default()).await?;
    let demo = ensure_demo_tenant(service, &operator, &data_dir).await?;
    let ca_cert = server.ca_cert().map(Path::to_owned).unwrap_or_default();
    let info = QuickstartInfo {
        customer_url: https_url(server.customer_addr()),
        management_url: https_url(server.management_addr()),
        ca_cert,
        operator_token,
        tenant_id: demo.tenant_id,
        service_code: DEMO_SERVICE_CODE.to_owned(),
        admin_login: demo.admin_login,
        admin_password: demo.admin_password,
        registration_token: demo.registration_token,
    };
    Ok((server, info))
}

/// `https://HOST:PORT`, naming loopback and unspecified addresses `localhost` so the
/// generated certificate matches.
pub fn https_url(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("https://localhost:{}", addr.port())
    } else {
        format!("https://{addr}")
    }
}

/// The bootstrap operator token from its file, or a new one if the file is gone or its
/// token was revoked.
async fn ensure_operator_token(service: &Service, data_dir: &Path) -> Result<String, QuickstartError> {
    let path = operator_token_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = text.trim().to_owned();
        if authz::operator(service, &token, &authz::Caller::default())
            .await
            .is_ok()
        {
            return Ok(token);
        }
    }
    let token = new_token(TokenKind::Operator);
    write_private_file(&path, format!("{token}\n").as_bytes()).map_err(|err| QuickstartError::File {
        path: path.clone(),
        message: err.to_string(),
    })?;
    operators::register(service, "quickstart", &token).await?;
    Ok(token)
}

async fn ensure_demo_tenant(
    service: &Service,
    operator: &OperatorPrincipal,
    data_dir: &Path,
) -> Result<DemoState, QuickstartError> {
    let path = data_dir.join("quickstart.json");
    let existing = tenants::by_service_code(service, operator, DEMO_SERVICE_CODE).await?;
    let Some(tenant) = existing else {
        let created = tenants::create(
            service,
            operator,
            CreateTenantRequest {
                service_code: DEMO_SERVICE_CODE.to_owned(),
                name: "Demo tenant".to_owned(),
                quota_bytes: 100 << 30,
                max_machines: 10,
                region: None,
                encryption_required: false,
                immutable_days: 0,
                agent_networks: Vec::new(),
                time_zone: None,
            },
        )
        .await?;
        let demo = DemoState {
            tenant_id: created.tenant.id.to_string(),
            admin_login: created.admin_login,
            admin_password: created.admin_password,
            registration_token: created.registration.token,
        };
        save_state(&path, &demo)?;
        return Ok(demo);
    };
    let mut demo = load_state(&path)?;
    let tenant_id = TenantId::parse(&demo.tenant_id).filter(|id| *id == tenant.id);
    if tenant_id.is_none() {
        return Err(QuickstartError::StateLost { path });
    }
    let scope = ContractScope::new(operator, tenant.id.clone());
    if !tenants::registration_token_usable(service, &scope, &demo.registration_token).await? {
        let token = tenants::issue_registration_token(service, &scope, &tenant).await?;
        demo.registration_token = token.token;
        save_state(&path, &demo)?;
    }
    Ok(demo)
}

fn load_state(path: &Path) -> Result<DemoState, QuickstartError> {
    let text = std::fs::read_to_string(path).map_err(|_| QuickstartError::StateLost {
        path: path.to_owned(),
    })?;
    serde_json::from_str(&text).map_err(|err| QuickstartError::File {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

fn save_state(path: &Path, demo: &DemoState) -> Result<(), QuickstartError> {
    let json = serde_json::to_vec_pretty(demo).map_err(|err| QuickstartError::File {
        path: path.to_owned(),
        message: err.to_string(),
    })?;
    write_private_file(path, &json).map_err(|err| QuickstartError::File {
        path: path.to_owned(),
        message: err.to_string(),
    })
}
