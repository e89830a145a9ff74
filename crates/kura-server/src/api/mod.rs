//! The HTTP API: which routes exist on which listener, and the JSON conventions they
//! share (request bodies through [`ApiJson`], errors as `{"error": "..."}`).
//!
//! Customer listener: `/api/v1/agents/register`, `/api/v1/agent/...` (and later the portal
//! and tenant-user API). Management listener: `/api/v1/operator/...`, `/metrics`,
//! `/healthz`. A route added to one router does not exist on the other.

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use kura_api::vault::MAX_PACK_BYTES;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

mod agent;
mod operator;
pub mod types;
mod vault;

/// Routes of the customer listener.
pub(crate) fn customer_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents/register", post(agent::register))
        .route("/api/v1/agent/whoami", get(agent::whoami))
        .route("/api/v1/vault", get(vault::info).post(vault::create))
        .route(
            "/api/v1/vault/key-slots",
            get(vault::key_slots).post(vault::add_key_slot),
        )
        .route("/api/v1/vault/key-slots/{id}", delete(vault::remove_key_slot))
        .route("/api/v1/vault/sessions", post(vault::open_session))
        .route("/api/v1/vault/sessions/{session}", delete(vault::abort_session))
        .route("/api/v1/vault/sessions/{session}/missing", post(vault::missing))
        .route(
            "/api/v1/vault/sessions/{session}/packs",
            put(vault::put_pack).layer(DefaultBodyLimit::max(MAX_PACK_BYTES)),
        )
        .route("/api/v1/vault/sessions/{session}/commit", post(vault::commit))
        .route("/api/v1/vault/snapshots", get(vault::snapshots))
        .route("/api/v1/vault/snapshots/{spec}", get(vault::snapshot))
        .route("/api/v1/vault/blobs", post(vault::blobs))
        .route("/api/v1/vault/forget", post(vault::forget))
        .route("/api/v1/vault/gc", post(vault::gc))
        .route("/api/v1/vault/verify", post(vault::verify))
        .route("/api/v1/vault/usage", get(vault::usage))
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
