//! Who is calling: axum extractors that turn a bearer token into a principal, or refuse
//! the request with a precise 401/403.
//!
//! - [`OperatorPrincipal`]: provider staff, by operator token (management listener only).
//! - [`AgentPrincipal`]: a registered machine, by its agent credential; yields the
//!   [`TenantScope`] the handler must pass to the database.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::app::AppState;
use crate::db::TenantStatus;
use crate::error::ApiError;
use crate::secrets::token_hash;
use crate::tenancy::{MachineId, TenantScope, agent_network_allows};

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct OperatorPrincipal {
    /// The name the token was issued under, for the log.
    token_name: String,
}

impl OperatorPrincipal {
    /// The process owner acting locally (quickstart setup), who already holds the data
    /// directory and so every secret in it.
    pub(crate) fn local_console() -> Self {
        OperatorPrincipal {
            token_name: "local console".to_owned(),
        }
    }

    pub fn token_name(&self) -> &str {
        &self.token_name
    }
}

impl FromRequestParts<AppState> for OperatorPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts, "an operator token")?;
        match state.db.operator_token(&token_hash(token)).await? {
            Some(record) => Ok(OperatorPrincipal {
                token_name: record.name,
            }),
            None => Err(ApiError::unauthorized("invalid or revoked operator token")),
        }
    }
}

/// An authenticated agent: the machine, and the scope of its tenant.
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub scope: TenantScope,
    pub machine_id: MachineId,
}

impl FromRequestParts<AppState> for AgentPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer_token(parts, "the agent credential")?;
        let Some(agent) = state.db.agent_by_credential(&token_hash(credential)).await? else {
            return Err(ApiError::unauthorized("unknown agent credential"));
        };
        if agent.credential_revoked {
            return Err(ApiError::unauthorized(
                "this agent's credential was revoked; register the machine again",
            ));
        }
        refuse_inactive_tenant(agent.tenant_status)?;
        refuse_outside_agent_networks(&agent.agent_networks, peer_ip(parts))?;
        Ok(AgentPrincipal {
            scope: TenantScope::for_authenticated(agent.tenant_id),
            machine_id: agent.machine_id,
        })
    }
}

/// A suspended or terminated tenant is locked out at once.
pub(crate) fn refuse_inactive_tenant(status: TenantStatus) -> Result<(), ApiError> {
    match status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(ApiError::forbidden(
            "this tenant is suspended; contact your service provider",
        )),
        TenantStatus::Terminated => Err(ApiError::forbidden("this tenant's contract has been terminated")),
    }
}

/// The private-gateway option (see [`agent_network_allows`]).
pub(crate) fn refuse_outside_agent_networks(
    networks: &[IpNet],
    peer: Option<IpAddr>,
) -> Result<(), ApiError> {
    if agent_network_allows(networks, peer) {
        Ok(())
    } else {
        Err(outside_agent_networks(peer))
    }
}

pub(crate) fn outside_agent_networks(peer: Option<IpAddr>) -> ApiError {
    let peer = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    ApiError::forbidden(format!(
        "this tenant accepts agents only from its configured networks, and {peer} is not in them"
    ))
}

/// The socket peer's address; IPv4 clients of a dual-stack socket appear as IPv4.
pub(crate) fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

fn bearer_token<'a>(parts: &'a Parts, what: &str) -> Result<&'a str, ApiError> {
    let missing = || {
        ApiError::unauthorized(format!(
            "missing credentials: send `Authorization: Bearer` with {what}"
        ))
    };
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}
