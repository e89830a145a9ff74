//! The HTTP API: which routes exist on which listener, and the JSON conventions they
//! share (request bodies through [`ApiJson`], errors as `{"error": "..."}`).
//!
//! Customer listener: `/api/v1/agents/register`, `/api/v1/agent/...` (and later the portal
//! and tenant-user API). Management listener: `/api/v1/operator/...`, `/metrics`,
//! `/healthz`. A route added to one router does not exist on the other.

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use axum::{Json, Router};
use kura_api::vault::{MAX_COMMIT_BYTES, MAX_PACK_BYTES};
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

mod agent;
mod operator;
pub mod types;
mod vault;

/// Builds one route's handler (with its layers) for the method it is given, so the
/// method in the table is the one the router serves.
type MakeRoute = fn(MethodFilter) -> MethodRouter<AppState>;

/// Every route of the customer listener: the router is built from this table, and the
/// isolation suite walks it ([`customer_route_table`]), so a route cannot be added without
/// the suite noticing.
const CUSTOMER_ROUTES: &[(Method, &str, MakeRoute)] = &[
    (Method::POST, "/api/v1/agents/register", |m| {
        on(m, agent::register)
    }),
    (Method::GET, "/api/v1/agent/whoami", |m| on(m, agent::whoami)),
    (Method::GET, "/api/v1/vault", |m| on(m, vault::info)),
    (Method::POST, "/api/v1/vault", |m| on(m, vault::create)),
    (Method::GET, "/api/v1/vault/key-slots", |m| {
        on(m, vault::key_slots)
    }),
    (Method::POST, "/api/v1/vault/key-slots", |m| {
        on(m, vault::add_key_slot)
    }),
    (Method::DELETE, "/api/v1/vault/key-slots/{id}", |m| {
        on(m, vault::remove_key_slot)
    }),
    (Method::POST, "/api/v1/vault/sessions", |m| {
        on(m, vault::open_session)
    }),
    (Method::DELETE, "/api/v1/vault/sessions/{session}", |m| {
        on(m, vault::abort_session)
    }),
    (Method::POST, "/api/v1/vault/sessions/{session}/missing", |m| {
        on(m, vault::missing)
    }),
    (Method::PUT, "/api/v1/vault/sessions/{session}/packs", |m| {
        on(m, vault::put_pack).layer(DefaultBodyLimit::max(MAX_PACK_BYTES))
    }),
    (Method::POST, "/api/v1/vault/sessions/{session}/commit", |m| {
        on(m, vault::commit).layer(DefaultBodyLimit::max(MAX_COMMIT_BYTES))
    }),
    (Method::GET, "/api/v1/vault/snapshots", |m| {
        on(m, vault::snapshots)
    }),
    (Method::GET, "/api/v1/vault/snapshots/{spec}", |m| {
        on(m, vault::snapshot)
    }),
    (Method::POST, "/api/v1/vault/blobs", |m| on(m, vault::blobs)),
    (Method::POST, "/api/v1/vault/forget", |m| on(m, vault::forget)),
    (Method::POST, "/api/v1/vault/gc", |m| on(m, vault::gc)),
    (Method::POST, "/api/v1/vault/verify", |m| on(m, vault::verify)),
    (Method::GET, "/api/v1/vault/usage", |m| on(m, vault::usage)),
];

/// Method and path pattern of every customer route, as the router has them.
pub fn customer_route_table() -> Vec<(Method, &'static str)> {
    CUSTOMER_ROUTES
        .iter()
        .map(|(method, path, _)| (method.clone(), *path))
        .collect()
}

/// Routes of the customer listener. Routes of one path with several methods merge.
pub(crate) fn customer_routes() -> Router<AppState> {
    CUSTOMER_ROUTES
        .iter()
        .fold(Router::new(), |router, (method, path, make)| {
            let filter = MethodFilter::try_from(method.clone()).expect("the table uses standard methods");
            router.route(path, make(filter))
        })
}

/// Routes of the management listener.
pub(crate) fn management_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/operator/tenants",
            post(operator::create_tenant).get(operator::list_tenants),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}",
            get(operator::show_tenant).patch(operator::update_tenant),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}/suspend",
            post(operator::suspend_tenant),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}/resume",
            post(operator::resume_tenant),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}/registration-tokens",
            post(operator::issue_registration_token),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}/machines",
            get(operator::list_machines),
        )
        .route(
            "/api/v1/operator/tenants/{tenant_id}/machines/{machine_id}/revoke",
            post(operator::revoke_machine),
        )
}

/// A JSON request body whose every failure is a precise JSON error: 400 for malformed
/// JSON, 422 for a missing, unknown or mistyped field, 413 for an oversized body, 415
/// without `Content-Type: application/json`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection, state.config.max_body)),
        }
    }
}

/// A raw request body (packs, id lists, frames) whose failures are JSON errors like
/// [`ApiJson`]'s: 413 with the limits for an oversized body.
pub struct ApiBytes(pub Bytes);

impl FromRequest<AppState> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is too large: a pack may have at most {MAX_PACK_BYTES} bytes, \
                     a commit {MAX_COMMIT_BYTES}, other requests at most {} bytes; nothing was stored",
                    state.config.max_body
                ),
            )),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                format!("cannot read request body: {}", rejection.body_text()),
            )),
        }
    }
}

fn json_rejection(rejection: JsonRejection, max_body: u64) -> ApiError {
    // axum's own texts prefix a generic sentence to serde's precise one; keep serde's.
    let detail = |err: &dyn std::error::Error| {
        let mut innermost = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            innermost = next.to_string();
            source = next.source();
        }
        innermost
    };
    match rejection {
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request(format!("malformed JSON: {}", detail(&err)))
        }
        JsonRejection::JsonDataError(err) => {
            ApiError::invalid(format!("invalid request body: {}", detail(&err)))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is too large: the limit is {max_body} bytes"),
        ),
        other => ApiError::new(
            other.status(),
            format!("cannot read request body: {}", other.body_text()),
        ),
    }
}

/// Fallback for paths no route matches.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such API route: {}", uri.path()))
}

/// Fallback for a known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not accept that HTTP method",
    )
}

/// Liveness and database reachability, for load balancers and monitoring.
async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.db.count_operator_tokens().await?;
    Ok(Json(
        serde_json::json!({ "status": "ok", "database": state.db.backend() }),
    ))
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
