//! Who is calling: axum extractors that turn a credential into a principal, or refuse
//! the request with a precise 401/403.
//!
//! - [`OperatorPrincipal`]: provider staff, by operator token (management listener only),
//!   with a provider role.
//! - [`AgentPrincipal`]: a registered machine, by its agent credential.
//! - [`UserPrincipal`]: a tenant user, by session cookie (with a CSRF token on every
//!   request that changes something) or by API token, with a tenant role.
//!
//! Agents and users yield the [`TenantScope`] the handler must pass to the database.
//! Operators and users must also hold the permission their route declares
//! ([`RequiredPermission`], set from the route tables in `api`); a route that declares
//! none refuses everyone. The client address is the socket peer, or with
//! `trusted_proxies` the first untrusted address of `X-Forwarded-For` ([`client_ip`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method};
use ipnet::IpNet;

use crate::app::AppState;
use crate::audit::Audit;
use crate::config::ServerConfig;
use crate::db::{ProviderRole, TenantRole, TenantStatus, TotpPolicy};
use crate::error::ApiError;
use crate::roles::Permission;
use crate::secrets::token_hash;
use crate::tenancy::{MachineId, TenantScope, UserId, agent_network_allows};

/// The cookie holding a portal session id.
pub const SESSION_COOKIE: &str = "kura_session";
/// The header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The permission a route needs, attached to it by the route table.
#[derive(Debug, Clone, Copy)]
pub struct RequiredPermission(pub Permission);

/// The id of the current request, for logs and the event log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where the management listener's middleware learns which operator a request
/// authenticated as, to write the operator work log after the handler ran.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorSlot(Arc<Mutex<Option<OperatorPrincipal>>>);

impl OperatorSlot {
    pub(crate) fn take(&self) -> Option<OperatorPrincipal> {
        self.0.lock().map_or(None, |mut slot| slot.take())
    }
}

/// Refuses unless `allowed`; names the role and the permission.
fn check_permission(parts: &Parts, role: &str, allows: impl Fn(Permission) -> bool) -> Result<(), ApiError> {
    match parts.extensions.get::<RequiredPermission>() {
        Some(RequiredPermission(permission)) if allows(*permission) => Ok(()),
        Some(RequiredPermission(permission)) => Err(ApiError::forbidden(format!(
            "your role ({role}) may not do this: it needs the {} permission (see docs/roles.md); ask an admin",
            permission.as_str()
        ))),
        None => Err(ApiError::forbidden(
            "this route declares no permission, so nobody may use it",
        )),
    }
}

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct OperatorPrincipal {
    /// The name the token was issued under, for the log.
    token_name: String,
    role: ProviderRole,
}

impl OperatorPrincipal {
    /// The process owner acting locally (quickstart setup), who already holds the data
    /// directory and so every secret in it.
    pub(crate) fn local_console() -> Self {
        OperatorPrincipal {
            token_name: "local console".to_owned(),
            role: ProviderRole::OperatorAdmin,
        }
    }

    pub fn token_name(&self) -> &str {
        &self.token_name
    }

    pub fn role(&self) -> ProviderRole {
        self.role
    }
}

impl FromRequestParts<AppState> for OperatorPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts, "an operator token")?;
        let Some(record) = state.db.operator_token(&token_hash(token)).await? else {
            return Err(ApiError::unauthorized("invalid or revoked operator token"));
        };
        let operator = OperatorPrincipal {
            token_name: record.name,
            role: record.role,
        };
        if let Some(slot) = parts.extensions.get::<OperatorSlot>()
            && let Ok(mut slot) = slot.0.lock()
        {
            *slot = Some(operator.clone());
        }
        check_permission(parts, operator.role.as_str(), |p| operator.role.allows(p))?;
        Ok(operator)
    }
}

/// How a user authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCredential {
    /// A portal session, by its id (not the cookie).
    Session(String),
    /// An API token, by its id.
    ApiToken(String),
}

/// An authenticated tenant user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub scope: TenantScope,
    pub user_id: UserId,
    pub login: String,
    /// The role in force: the user's, or an API token's (never above its owner's).
    pub role: TenantRole,
    pub credential: UserCredential,
    /// Actor, address and request id for the event log.
    pub audit: Audit,
}

impl UserPrincipal {
    /// The session id when signed in with a cookie; API tokens cannot change passwords,
    /// create tokens or manage sessions.
    pub fn session_id(&self) -> Result<&str, ApiError> {
        match &self.credential {
            UserCredential::Session(id) => Ok(id),
            UserCredential::ApiToken(_) => Err(ApiError::forbidden(
                "API tokens cannot do this; sign in with your password (POST /api/v1/login)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for UserPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let now = state.clock.now_ms();
        let source = client_ip(parts, &state.config);
        let request_id = request_id(parts);
        let principal = if parts.headers.contains_key(AUTHORIZATION) {
            let token = bearer_token(parts, "an API token")?;
            let Some(token) = state.db.api_token_identity(&token_hash(token)).await? else {
                return Err(ApiError::unauthorized(
                    "unknown API token; check that it was copied completely",
                ));
            };
            if token.revoked {
                return Err(ApiError::unauthorized(
                    "this API token was revoked; create a new one",
                ));
            }
            if now >= token.expires_ms {
                return Err(ApiError::unauthorized(format!(
                    "this API token expired at {}; create a new one",
                    crate::api::types::rfc3339(token.expires_ms)
                )));
            }
            if token.user_disabled {
                return Err(ApiError::unauthorized(
                    "the account owning this API token is disabled",
                ));
            }
            if !token.user_role.covers(token.token_role) {
                return Err(ApiError::unauthorized(
                    "this API token's role is above its owner's current role; create a new token",
                ));
            }
            refuse_inactive_tenant(token.tenant_status)?;
            refuse_before_totp_enrolment(parts, token.totp_policy, token.user_role, token.totp_enrolled)?;
            let scope = TenantScope::for_authenticated(token.tenant_id);
            let audit = Audit {
                actor: token.login.clone(),
                source,
                request_id,
            };
            if token.token_role == TenantRole::Admin {
                refuse_outside_admin_networks(state, &scope, &audit, &token.admin_networks, now).await?;
            }
            state.db.touch_api_token(&scope, &token.token_id, now).await?;
            UserPrincipal {
                scope,
                user_id: token.user_id,
                login: token.login,
                role: token.token_role,
                credential: UserCredential::ApiToken(token.token_id),
                audit,
            }
        } else {
            let signed_out = || {
                ApiError::unauthorized("not signed in: POST /api/v1/login, or send an API token as Bearer")
            };
            let cookie = session_cookie(&parts.headers).ok_or_else(signed_out)?;
            let session = state
                .db
                .session_identity(&token_hash(&cookie))
                .await?
                .ok_or_else(signed_out)?;
            let ended = || ApiError::unauthorized("your session has ended; sign in again");
            let idle = duration_ms(state.config.session_idle_timeout);
            let absolute = duration_ms(state.config.session_absolute_timeout);
            if session.revoked
                || session.user_disabled
                || now >= session.last_seen_ms.saturating_add(idle)
                || now >= session.created_ms.saturating_add(absolute)
            {
                return Err(ended());
            }
            refuse_inactive_tenant(session.tenant_status)?;
            refuse_before_totp_enrolment(parts, session.totp_policy, session.role, session.totp_enrolled)?;
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok());
                if sent.is_none_or(|csrf| token_hash(csrf) != session.csrf_hash) {
                    return Err(ApiError::forbidden(
                        "missing or wrong X-CSRF-Token header: send the csrf_token returned at sign-in",
                    ));
                }
            }
            let scope = TenantScope::for_authenticated(session.tenant_id);
            let audit = Audit {
                actor: session.login.clone(),
                source,
                request_id,
            };
            if session.role == TenantRole::Admin {
                refuse_outside_admin_networks(state, &scope, &audit, &session.admin_networks, now).await?;
            }
            state
                .db
                .touch_user_session(&scope, &session.session_id, now)
                .await?;
            UserPrincipal {
                scope,
                user_id: session.user_id,
                login: session.login,
                role: session.role,
                credential: UserCredential::Session(session.session_id),
                audit,
            }
        };
        check_permission(parts, principal.role.as_str(), |p| principal.role.allows(p))?;
        Ok(principal)
    }
}

/// Routes a user who must enrol in TOTP may still use: to enrol, or to leave.
const BEFORE_TOTP_ENROLMENT: &[&str] = &[
    "/api/v1/me",
    "/api/v1/logout",
    "/api/v1/totp/enroll",
    "/api/v1/totp/confirm",
];

/// The tenant's TOTP policy: a user it covers who has not enrolled can only enrol.
fn refuse_before_totp_enrolment(
    parts: &Parts,
    policy: TotpPolicy,
    role: TenantRole,
    enrolled: bool,
) -> Result<(), ApiError> {
    let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
    if enrolled || !policy.requires(role) || route.is_some_and(|route| BEFORE_TOTP_ENROLMENT.contains(&route))
    {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "your tenant requires TOTP for your role: enrol first (POST /api/v1/totp/enroll, then /api/v1/totp/confirm)",
    ))
}

/// The admin allow-list: refused requests say so and are logged in the tenant's log.
pub(crate) async fn refuse_outside_admin_networks(
    state: &AppState,
    scope: &TenantScope,
    audit: &Audit,
    networks: &[IpNet],
    now_ms: i64,
) -> Result<(), ApiError> {
    if agent_network_allows(networks, audit.source) {
        return Ok(());
    }
    audit
        .tenant(
            state.db.as_ref(),
            scope,
            now_ms,
            "admin.access",
            &audit.actor,
            "refused: outside admin networks",
        )
        .await?;
    let peer = audit
        .source
        .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    Err(ApiError::forbidden(format!(
        "admins of this tenant may sign in only from its admin networks, and {peer} is not in them; \
         ask another admin to add it"
    )))
}

/// The session cookie's value, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

pub(crate) fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The current request's id (set by the router's middleware).
pub(crate) fn request_id(parts: &Parts) -> String {
    request_id_of(&parts.extensions)
}

pub(crate) fn request_id_of(extensions: &Extensions) -> String {
    extensions
        .get::<RequestId>()
        .map(|RequestId(id)| id.clone())
        .unwrap_or_default()
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which
/// case `X-Forwarded-For` is read from the right, skipping trusted proxies.
pub(crate) fn client_ip(parts: &Parts, config: &ServerConfig) -> Option<IpAddr> {
    client_ip_of(&parts.extensions, &parts.headers, config)
}

pub(crate) fn client_ip_of(
    extensions: &Extensions,
    headers: &HeaderMap,
    config: &ServerConfig,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())?;
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()))
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

/// An authenticated agent: the machine, and the scope of its tenant.
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub scope: TenantScope,
    pub machine_id: MachineId,
    /// Actor, address and request id for the event log.
    pub audit: Audit,
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
            audit: Audit {
                actor: format!("agent:{}", agent.machine_id),
                source: peer_ip(parts),
                request_id: request_id(parts),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: Option<&str>, trusted: &[&str]) -> Option<IpAddr> {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 443)));
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        }
        let mut config = ServerConfig::with_data_dir("/nonexistent");
        config.trusted_proxies = trusted.iter().map(|net| net.parse().unwrap()).collect();
        client_ip_of(&extensions, &headers, &config)
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        // Without trusted proxies the header is ignored: anyone can write it.
        assert_eq!(client("192.0.2.9", Some("10.0.0.1"), &[]), ip("192.0.2.9"));
        // A trusted proxy's header is read from the right, skipping trusted hops.
        let trusted = ["10.0.0.0/24", "10.0.1.0/24"];
        assert_eq!(
            client("10.0.0.5", Some("203.0.113.7, 198.51.100.2, 10.0.1.3"), &trusted),
            ip("198.51.100.2")
        );
        assert_eq!(client("10.0.0.5", None, &trusted), ip("10.0.0.5"));
        // IPv4 clients of a dual-stack socket appear as IPv4.
        assert_eq!(client("::ffff:192.0.2.9", None, &[]), ip("192.0.2.9"));
        assert_eq!(client("2001:db8::1", None, &[]), ip("2001:db8::1"));
    }
}
