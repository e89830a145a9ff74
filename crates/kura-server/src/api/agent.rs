//! Agent API (customer listener): registration with a one-time token, and the routes of
//! registered agents, which all take an [`AgentPrincipal`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::ApiJson;
use super::types::{AgentWhoAmI, RegisterAgentRequest, RegisteredAgent};
use crate::app::AppState;
use crate::audit::Audit;
use crate::auth::{AgentPrincipal, RequestId, outside_agent_networks, refuse_inactive_tenant};
use crate::db::{NewMachine, RegistrationOutcome};
use crate::error::ApiError;
use crate::secrets::{TokenKind, new_token, token_hash};
use crate::tenancy::{MachineId, TenantScope};
use crate::tenants::now_ms;

/// Exchanges a registration token for a machine and its credential (shown once).
pub(super) async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(caller_request_id)): Extension<RequestId>,
    ApiJson(request): ApiJson<RegisterAgentRequest>,
) -> Result<(StatusCode, Json<RegisteredAgent>), ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name must be 1 to 255 characters without control characters (e.g. the host name)",
        ));
    }
    let credential = new_token(TokenKind::AgentCredential);
    let peer_ip = peer.ip().to_canonical();
    let machine = NewMachine {
        registration_token_hash: token_hash(request.token.trim()),
        machine_id: MachineId::generate(),
        name: name.to_owned(),
        credential_hash: token_hash(&credential),
        peer: Some(peer_ip),
    };
    let now = now_ms();
    let outcome = state.db.register_machine(&machine, now).await?;
    let label = match &outcome {
        RegistrationOutcome::Registered { .. } => "registered",
        RegistrationOutcome::UnknownToken => "unknown_token",
        RegistrationOutcome::TokenExpired => "token_expired",
        RegistrationOutcome::TokenUsed => "token_used",
        RegistrationOutcome::MachineLimitReached { .. } => "machine_limit",
        RegistrationOutcome::TenantNotActive(_) => "tenant_not_active",
        RegistrationOutcome::PeerOutsideAgentNetworks => "outside_agent_networks",
    };
    metrics::counter!("kura_agent_registrations_total", "outcome" => label).increment(1);
    match outcome {
        RegistrationOutcome::Registered {
            tenant_id,
            machine_id,
        } => {
            tracing::info!(%tenant_id, %machine_id, peer = %peer_ip, "agent registered");
            let audit = Audit {
                actor: format!("agent:{machine_id}"),
                source: Some(peer_ip),
                request_id: caller_request_id,
            };
            let scope = TenantScope::for_authenticated(tenant_id.clone());
            audit
                .tenant(state.db.as_ref(), &scope, now, "machine.register", name, "ok")
                .await?;
            Ok((
                StatusCode::CREATED,
                Json(RegisteredAgent {
                    machine_id: machine_id.to_string(),
                    tenant_id: tenant_id.to_string(),
                    credential,
                }),
            ))
        }
        RegistrationOutcome::UnknownToken => Err(ApiError::unauthorized(
            "unknown registration token; check that it was copied completely",
        )),
        RegistrationOutcome::TokenExpired => Err(ApiError::unauthorized(
            "this registration token has expired; ask your tenant admin for a new one",
        )),
        RegistrationOutcome::TokenUsed => Err(ApiError::unauthorized(
            "this registration token has already been used; each token registers one machine",
        )),
        RegistrationOutcome::MachineLimitReached { max_machines } => Err(ApiError::conflict(format!(
            "the tenant's machine limit is reached ({max_machines} machines); revoke a machine or ask the provider for a larger plan"
        ))),
        RegistrationOutcome::TenantNotActive(status) => Err(refuse_inactive_tenant(status)
            .err()
            .unwrap_or_else(|| ApiError::forbidden("this tenant is not active"))),
        RegistrationOutcome::PeerOutsideAgentNetworks => Err(outside_agent_networks(Some(peer_ip))),
    }
}

/// Who the credential belongs to: lets an agent check its registration.
pub(super) async fn whoami(agent: AgentPrincipal) -> Json<AgentWhoAmI> {
    Json(AgentWhoAmI {
        tenant_id: agent.scope.tenant_id().to_string(),
        machine_id: agent.machine_id.to_string(),
    })
}
