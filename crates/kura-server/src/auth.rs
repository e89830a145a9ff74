//! Who is calling: axum extractors that turn a credential into one of the service's
//! principals (`kura_service::authz`), or refuse the request with a precise 401/403.
//!
//! - [`Operator`]: provider staff, by operator token (management listener only), with a
//!   provider role.
//! - [`Agent`]: a registered machine, by its agent credential.
//! - [`User`]: a tenant user, by session cookie (with a CSRF token, as the
//!   `X-CSRF-Token` header or the `csrf_token` form field, on every request that changes
//!   something) or by API token, with a tenant role.
//!
//! Operators and users must also hold the permission their route declares
//! ([`RequiredPermission`], set from the route tables in `api`); a route that declares
//! none refuses everyone. The client address is the socket peer, or with
//! `trusted_proxies` the first untrusted address of `X-Forwarded-For` ([`client_ip_of`]).

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method};
use kura_service::ServiceError;
use kura_service::authz::{
    self, AgentPrincipal, Caller, OperatorPrincipal, Permission, UserCheck, UserPrincipal,
};

use crate::app::AppState;
use crate::config::ServerConfig;
use crate::error::ApiError;

/// The cookie holding a portal session id.
pub const SESSION_COOKIE: &str = "kura_session";
/// The cookie holding an operator's console session id. Browsers keep cookies per host,
/// not per port, so it is named apart from the portal's.
pub const CONSOLE_SESSION_COOKIE: &str = "kura_console_session";
/// The header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The permission a route needs, attached to it by the route table.
#[derive(Debug, Clone, Copy)]
pub struct RequiredPermission(pub Permission);

/// The id of the current request, for logs and the event log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A CSRF token sent as a hidden form field, put here by the form extractor before the
/// principal is checked.
#[derive(Debug, Clone)]
pub struct FormCsrfToken(pub String);

/// Where the management listener's middleware learns which operator a request
/// authenticated as, to write the operator work log after the handler ran.
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorSlot(Arc<Mutex<Option<OperatorPrincipal>>>);

impl OperatorSlot {
    pub(crate) fn take(&self) -> Option<OperatorPrincipal> {
        self.0.lock().map_or(None, |mut slot| slot.take())
    }
}

/// The permission the route declares; a route that declares none refuses everyone.
pub(crate) fn required(parts: &Parts) -> Result<Permission, ApiError> {
    parts
        .extensions
        .get::<RequiredPermission>()
        .map(|RequiredPermission(permission)| *permission)
        .ok_or_else(|| ApiError::forbidden("this route declares no permission, so nobody may use it"))
}

/// An authenticated operator holding the route's permission.
#[derive(Debug, Clone)]
pub struct Operator(pub OperatorPrincipal);

impl Deref for Operator {
    type Target = OperatorPrincipal;

    fn deref(&self) -> &OperatorPrincipal {
        &self.0
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let operator = authenticate_operator(parts, state).await?;
        note_operator(parts, &operator);
        operator.require(required(parts)?)?;
        Ok(Operator(operator))
    }
}

/// Tells the management listener's middleware who the request authenticated as, so the
/// call goes into the operator work log.
pub(crate) fn note_operator(parts: &Parts, operator: &OperatorPrincipal) {
    if let Some(slot) = parts.extensions.get::<OperatorSlot>()
        && let Ok(mut slot) = slot.0.lock()
    {
        *slot = Some(operator.clone());
    }
}

/// Routes an operator may use before finishing the first sign-in (own password, TOTP).
const BEFORE_OPERATOR_SETUP: &[&str] = &[
    "/api/v1/operator/me",
    "/api/v1/operator/logout",
    "/api/v1/operator/account/password",
    "/api/v1/operator/account/totp/enroll",
    "/api/v1/operator/account/totp/confirm",
    "/setup",
    "/setup/password",
    "/setup/totp",
    "/setup/totp/confirm",
    "/logout",
];

/// The operator of a request (operator token, or console session cookie with the CSRF
/// token when the request changes something), before the route's permission is checked.
pub(crate) async fn authenticate_operator(
    parts: &Parts,
    state: &AppState,
) -> Result<OperatorPrincipal, ServiceError> {
    let caller = caller(parts, &state.config);
    if parts.headers.contains_key(AUTHORIZATION) {
        let token = bearer_token(parts, "an operator token")?;
        return authz::operator(&state.service, token, &caller).await;
    }
    let cookie = crate::web::cookie(&parts.headers, CONSOLE_SESSION_COOKIE).ok_or_else(|| {
        ServiceError::unauthenticated(
            "missing credentials: send `Authorization: Bearer` with an operator token, or sign in \
             (POST /api/v1/operator/login)",
        )
    })?;
    let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
    let check = state_check(
        parts,
        route.is_some_and(|route| BEFORE_OPERATOR_SETUP.contains(&route)),
    );
    authz::operator_session(&state.service, &cookie, check, &caller).await
}

/// What a cookie session must show besides the cookie: the CSRF token (header or form
/// field) on a request that changes something.
fn state_check(parts: &Parts, open_before_setup: bool) -> UserCheck<'_> {
    let form_csrf = parts
        .extensions
        .get::<FormCsrfToken>()
        .map(|FormCsrfToken(t)| t.as_str());
    UserCheck {
        csrf_token: parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .or(form_csrf),
        changes_state: !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS),
        open_before_totp_enrolment: open_before_setup,
    }
}

/// Routes a user who must enrol in TOTP may still use: to enrol, or to leave.
const BEFORE_TOTP_ENROLMENT: &[&str] = &[
    "/api/v1/me",
    "/api/v1/logout",
    "/api/v1/totp/enroll",
    "/api/v1/totp/confirm",
    "/account",
    "/account/language",
    "/account/totp/enroll",
    "/account/totp/confirm",
    "/logout",
];

/// An authenticated tenant user holding the route's permission.
#[derive(Debug, Clone)]
pub struct User(pub UserPrincipal);

impl Deref for User {
    type Target = UserPrincipal;

    fn deref(&self) -> &UserPrincipal {
        &self.0
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = authenticate_user(parts, state).await?;
        user.require(required(parts)?)?;
        Ok(User(user))
    }
}

/// The tenant user of a request (API token or session cookie, with the CSRF token when
/// the request changes something), before the route's permission is checked.
pub(crate) async fn authenticate_user(
    parts: &Parts,
    state: &AppState,
) -> Result<UserPrincipal, ServiceError> {
    let caller = caller(parts, &state.config);
    let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
    let check = state_check(
        parts,
        route.is_some_and(|route| BEFORE_TOTP_ENROLMENT.contains(&route)),
    );
    if parts.headers.contains_key(AUTHORIZATION) {
        let token = bearer_token(parts, "an API token")?;
        authz::api_token(&state.service, token, check, &caller).await
    } else {
        let cookie = session_cookie(&parts.headers).ok_or_else(|| {
            ServiceError::unauthenticated("not signed in: POST /api/v1/login, or send an API token as Bearer")
        })?;
        authz::session(&state.service, &cookie, check, &caller).await
    }
}

/// An authenticated agent.
#[derive(Debug, Clone)]
pub struct Agent(pub AgentPrincipal);

impl Deref for Agent {
    type Target = AgentPrincipal;

    fn deref(&self) -> &AgentPrincipal {
        &self.0
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer_token(parts, "the agent credential")?;
        // The private-gateway check uses the socket peer: agents do not come through
        // the portal's proxies.
        let caller = Caller {
            source: peer_ip(&parts.extensions),
            request_id: request_id_of(&parts.extensions),
        };
        Ok(Agent(
            authz::agent(&state.service, credential, caller.source, &caller).await?,
        ))
    }
}

/// The caller's address and request id, taken before the body is read.
pub struct CallerInfo(pub Caller);

impl FromRequestParts<AppState> for CallerInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(CallerInfo(caller(parts, &state.config)))
    }
}

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    crate::web::cookie(headers, SESSION_COOKIE)
}

/// The request's origin for the event log.
fn caller(parts: &Parts, config: &ServerConfig) -> Caller {
    caller_of(&parts.extensions, &parts.headers, config)
}

pub(crate) fn caller_of(extensions: &Extensions, headers: &HeaderMap, config: &ServerConfig) -> Caller {
    Caller {
        source: client_ip_of(extensions, headers, config),
        request_id: request_id_of(extensions),
    }
}

pub(crate) fn request_id_of(extensions: &Extensions) -> String {
    extensions
        .get::<RequestId>()
        .map(|RequestId(id)| id.clone())
        .unwrap_or_default()
}

/// The socket peer's address; IPv4 clients of a dual-stack socket appear as IPv4.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which
/// case `X-Forwarded-For` is read from the right, skipping trusted proxies.
pub(crate) fn client_ip_of(
    extensions: &Extensions,
    headers: &HeaderMap,
    config: &ServerConfig,
) -> Option<IpAddr> {
    let peer = peer_ip(extensions)?;
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

fn bearer_token<'a>(parts: &'a Parts, what: &str) -> Result<&'a str, ServiceError> {
    let missing = || {
        ServiceError::unauthenticated(format!(
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
