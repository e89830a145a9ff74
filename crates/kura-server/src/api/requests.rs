//! Support requests: tenant users open them and reply on the customer listener; operators
//! list, read, reply to and close them on the management listener. Every rule, event and
//! mail is the service operation's.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kura_service::ids::TenantId;
use kura_service::model::{RequestCategory, RequestFilter, RequestStatus, SupportRequestRecord};
use kura_service::ops::requests::{self, RequestThread};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{CallerInfo, Operator, User};
use crate::error::ApiError;

/// `POST /api/v1/support-requests`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// `question`, `incident` or `security-event`.
    pub category: String,
    pub subject: String,
    pub body: String,
}

/// A reply to a request; `close` closes it (with or without a reply).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub close: bool,
}

/// A support request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupportRequestView {
    pub id: String,
    pub tenant_id: String,
    pub requester: String,
    pub category: String,
    pub subject: String,
    /// `open` (waiting for the provider), `answered` or `closed`.
    pub status: String,
    pub created: String,
    pub updated: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
}

impl From<&SupportRequestRecord> for SupportRequestView {
    fn from(request: &SupportRequestRecord) -> Self {
        SupportRequestView {
            id: request.id.to_string(),
            tenant_id: request.tenant_id.to_string(),
            requester: request.requester.clone(),
            category: request.category.as_str().to_owned(),
            subject: request.subject.clone(),
            status: request.status.as_str().to_owned(),
            created: rfc3339(request.created_ms),
            updated: rfc3339(request.updated_ms),
            closed: request.closed_ms.map(rfc3339),
        }
    }
}

/// One message of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupportMessageView {
    pub author: String,
    pub from_operator: bool,
    pub body: String,
    pub created: String,
}

/// A request with its messages, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupportThreadView {
    #[serde(flatten)]
    pub request: SupportRequestView,
    pub messages: Vec<SupportMessageView>,
}

impl From<&RequestThread> for SupportThreadView {
    fn from(thread: &RequestThread) -> Self {
        SupportThreadView {
            request: SupportRequestView::from(&thread.request),
            messages: thread
                .messages
                .iter()
                .map(|m| SupportMessageView {
                    author: m.author.clone(),
                    from_operator: m.from_operator,
                    body: m.body.clone(),
                    created: rfc3339(m.created_ms),
                })
                .collect(),
        }
    }
}

/// Which requests a list shows.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// `open`, `answered` or `closed`.
    #[serde(default)]
    pub status: Option<String>,
    /// `question`, `incident` or `security-event`.
    #[serde(default)]
    pub category: Option<String>,
    /// A tenant id (operators only).
    #[serde(default)]
    pub tenant: Option<String>,
    /// At most this many (default 100, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl RequestQuery {
    fn filter(&self) -> Result<RequestFilter, ApiError> {
        let parse = |field: &str, text: &Option<String>, ok: fn(&str) -> bool, words: &str| match text {
            Some(text) if !ok(text) => Err(ApiError::invalid(format!("{field}: write {words}"))),
            _ => Ok(()),
        };
        parse(
            "status",
            &self.status,
            |t| RequestStatus::parse(t).is_some(),
            "open, answered or closed",
        )?;
        parse(
            "category",
            &self.category,
            |t| RequestCategory::parse(t).is_some(),
            "question, incident or security-event",
        )?;
        let tenant = match &self.tenant {
            Some(text) => {
                Some(TenantId::parse(text).ok_or_else(|| ApiError::invalid("tenant: a tenant id"))?)
            }
            None => None,
        };
        Ok(RequestFilter {
            status: self.status.as_deref().and_then(RequestStatus::parse),
            category: self.category.as_deref().and_then(RequestCategory::parse),
            tenant,
            user: None,
            limit: self.limit.unwrap_or(100),
        })
    }
}

fn query_of(query: Result<Query<RequestQuery>, QueryRejection>) -> Result<RequestFilter, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::invalid(format!("bad query: {}", err.body_text())))?;
    query.filter()
}

/// Opens a support request (a question, an incident with the service, a security event).
#[utoipa::path(post, path = "/api/v1/support-requests", tag = "support",
    request_body = OpenRequest,
    responses((status = 201, body = SupportThreadView)))]
pub(super) async fn open(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<OpenRequest>,
) -> Result<(StatusCode, Json<SupportThreadView>), ApiError> {
    let category = RequestCategory::parse(request.category.trim())
        .ok_or_else(|| ApiError::invalid("category: write question, incident or security-event"))?;
    let thread = requests::open(&state.service, &user, category, &request.subject, &request.body).await?;
    Ok((StatusCode::CREATED, Json(SupportThreadView::from(&thread))))
}

/// The caller's requests (every one of the tenant's for user admins), latest activity first.
#[utoipa::path(get, path = "/api/v1/support-requests", tag = "support",
    params(RequestQuery),
    responses((status = 200, body = Vec<SupportRequestView>)))]
pub(super) async fn list_own(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Json<Vec<SupportRequestView>>, ApiError> {
    let list = requests::for_user(&state.service, &user, query_of(query)?).await?;
    Ok(Json(list.iter().map(SupportRequestView::from).collect()))
}

/// One request with its messages.
#[utoipa::path(get, path = "/api/v1/support-requests/{id}", tag = "support",
    responses((status = 200, body = SupportThreadView)))]
pub(super) async fn get_own(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<SupportThreadView>, ApiError> {
    let thread = requests::get_for_user(&state.service, &user, &id).await?;
    Ok(Json(SupportThreadView::from(&thread)))
}

/// Adds to a request (it waits for the provider again), or closes it.
#[utoipa::path(post, path = "/api/v1/support-requests/{id}/replies", tag = "support",
    request_body = ReplyRequest,
    responses((status = 200, body = SupportThreadView)))]
pub(super) async fn reply_own(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReplyRequest>,
) -> Result<Json<SupportThreadView>, ApiError> {
    let thread =
        requests::reply_by_user(&state.service, &user, &id, request.body.as_deref(), request.close).await?;
    Ok(Json(SupportThreadView::from(&thread)))
}

/// Every tenant's requests, latest activity first.
#[utoipa::path(get, path = "/api/v1/operator/support-requests", tag = "support",
    params(RequestQuery),
    responses((status = 200, body = Vec<SupportRequestView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    operator: Operator,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Result<Json<Vec<SupportRequestView>>, ApiError> {
    let list = requests::list(&state.service, &operator, query_of(query)?).await?;
    Ok(Json(list.iter().map(SupportRequestView::from).collect()))
}

/// One request with its messages.
#[utoipa::path(get, path = "/api/v1/operator/support-requests/{id}", tag = "support",
    responses((status = 200, body = SupportThreadView)))]
pub(super) async fn get(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<SupportThreadView>, ApiError> {
    let thread = requests::get(&state.service, &operator, &id).await?;
    Ok(Json(SupportThreadView::from(&thread)))
}

/// Replies (mailed to the requester) and/or closes the request.
#[utoipa::path(post, path = "/api/v1/operator/support-requests/{id}/replies", tag = "support",
    request_body = ReplyRequest,
    responses((status = 200, body = SupportThreadView)))]
pub(super) async fn reply(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReplyRequest>,
) -> Result<Json<SupportThreadView>, ApiError> {
    let thread = requests::reply(
        &state.service,
        &operator,
        &caller,
        &id,
        request.body.as_deref(),
        request.close,
    )
    .await?;
    Ok(Json(SupportThreadView::from(&thread)))
}
