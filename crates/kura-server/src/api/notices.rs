//! Notices: operators publish and update them on the management listener; tenant users
//! read them (in their language) and mark them read on the customer listener. Every rule,
//! event and mail is the service operation's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kura_service::model::{Language, NoticeKind, NoticeRecord, NoticeText, TenantNotice};
use kura_service::ops::notices::{self, Audience, NoticeDraft};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, parse_time};
use crate::app::AppState;
use crate::auth::{CallerInfo, Operator, User};
use crate::error::ApiError;

/// `POST /api/v1/operator/notices` and `PATCH …/{id}` (which keeps the audience and
/// ignores `tenants`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    /// `change`, `maintenance` or `incident`.
    pub kind: String,
    #[serde(default)]
    pub title_ja: Option<String>,
    #[serde(default)]
    pub title_en: Option<String>,
    #[serde(default)]
    pub body_ja: Option<String>,
    #[serde(default)]
    pub body_en: Option<String>,
    /// RFC 3339: when a maintenance window (or incident) starts.
    #[serde(default)]
    pub starts: Option<String>,
    /// RFC 3339: when it ends.
    #[serde(default)]
    pub ends: Option<String>,
    /// `"all"`, or a list of tenant ids or service codes (publishing only).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenants: Option<serde_json::Value>,
}

/// A notice as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorNoticeView {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_ja: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_en: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_ja: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_en: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    /// `"all"`, or the ids of the tenants it is for.
    #[schema(value_type = Object)]
    pub tenants: serde_json::Value,
    pub author: String,
    pub published: String,
    pub updated: String,
    pub revision: i64,
}

impl From<&NoticeRecord> for OperatorNoticeView {
    fn from(notice: &NoticeRecord) -> Self {
        OperatorNoticeView {
            id: notice.id.to_string(),
            kind: notice.kind.as_str().to_owned(),
            title_ja: notice.text.title_ja.clone(),
            title_en: notice.text.title_en.clone(),
            body_ja: notice.text.body_ja.clone(),
            body_en: notice.text.body_en.clone(),
            starts: notice.starts_ms.map(rfc3339),
            ends: notice.ends_ms.map(rfc3339),
            tenants: if notice.all_tenants {
                serde_json::Value::from("all")
            } else {
                notice.tenants.iter().map(|id| id.to_string()).collect()
            },
            author: notice.author.clone(),
            published: rfc3339(notice.published_ms),
            updated: rfc3339(notice.updated_ms),
            revision: notice.revision,
        }
    }
}

/// A notice as a tenant user reads it: in their language where it is written in it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NoticeView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    pub published: String,
    pub updated: String,
    pub revision: i64,
    /// Whether the caller marked the current revision read.
    pub read: bool,
}

impl NoticeView {
    fn of(notice: &TenantNotice, language: Language) -> NoticeView {
        let (title, body) = notice.notice.text.in_language(language);
        NoticeView {
            id: notice.notice.id.to_string(),
            kind: notice.notice.kind.as_str().to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            starts: notice.notice.starts_ms.map(rfc3339),
            ends: notice.notice.ends_ms.map(rfc3339),
            published: rfc3339(notice.notice.published_ms),
            updated: rfc3339(notice.notice.updated_ms),
            revision: notice.notice.revision,
            read: notice.read,
        }
    }
}

/// The draft and the audience of a request.
fn draft_of(request: NoticeRequest) -> Result<(NoticeDraft, Option<Audience>), ApiError> {
    let kind = NoticeKind::parse(request.kind.trim())
        .ok_or_else(|| ApiError::invalid("kind: write change, maintenance or incident"))?;
    let audience = match request.tenants {
        None => None,
        Some(serde_json::Value::String(all)) if all == "all" => Some(Audience::All),
        Some(serde_json::Value::Array(items)) => Some(Audience::Tenants(
            items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(name) => Ok(name),
                    _ => Err(ApiError::invalid(
                        "tenants: list tenant ids or service codes as strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
        )),
        Some(_) => {
            return Err(ApiError::invalid(
                "tenants: give \"all\" or a list of tenant ids or service codes",
            ));
        }
    };
    let draft = NoticeDraft {
        kind,
        text: NoticeText {
            title_ja: request.title_ja,
            title_en: request.title_en,
            body_ja: request.body_ja,
            body_en: request.body_en,
        },
        starts_ms: parse_time("starts", request.starts.as_deref())?,
        ends_ms: parse_time("ends", request.ends.as_deref())?,
    };
    Ok((draft, audience))
}

/// Publishes a notice: shown at once in the portal and mailed to the tenants' admins.
#[utoipa::path(post, path = "/api/v1/operator/notices", tag = "notices",
    request_body = NoticeRequest,
    responses((status = 201, body = OperatorNoticeView)))]
pub(super) async fn publish(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    ApiJson(request): ApiJson<NoticeRequest>,
) -> Result<(StatusCode, Json<OperatorNoticeView>), ApiError> {
    let (draft, audience) = draft_of(request)?;
    let audience = audience
        .ok_or_else(|| ApiError::invalid("tenants: give \"all\" or a list of tenant ids or service codes"))?;
    let notice = notices::publish(&state.service, &operator, &caller, draft, &audience).await?;
    Ok((StatusCode::CREATED, Json(OperatorNoticeView::from(&notice))))
}

/// Every notice, newest first.
#[utoipa::path(get, path = "/api/v1/operator/notices", tag = "notices",
    responses((status = 200, body = Vec<OperatorNoticeView>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<Vec<OperatorNoticeView>>, ApiError> {
    let notices = notices::list(&state.service, &operator).await?;
    Ok(Json(notices.iter().map(OperatorNoticeView::from).collect()))
}

/// One notice.
#[utoipa::path(get, path = "/api/v1/operator/notices/{id}", tag = "notices",
    responses((status = 200, body = OperatorNoticeView)))]
pub(super) async fn get(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<OperatorNoticeView>, ApiError> {
    let notice = notices::get(&state.service, &operator, &id).await?;
    Ok(Json(OperatorNoticeView::from(&notice)))
}

/// Updates a notice (a follow-up): mailed again, unread again; its audience stays.
#[utoipa::path(patch, path = "/api/v1/operator/notices/{id}", tag = "notices",
    request_body = NoticeRequest,
    responses((status = 200, body = OperatorNoticeView)))]
pub(super) async fn update(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    operator: Operator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<NoticeRequest>,
) -> Result<Json<OperatorNoticeView>, ApiError> {
    let (draft, audience) = draft_of(request)?;
    if audience.is_some() {
        return Err(ApiError::invalid(
            "tenants: who a notice is for cannot change; publish a new notice for other tenants",
        ));
    }
    let notice = notices::update(&state.service, &operator, &caller, &id, draft).await?;
    Ok(Json(OperatorNoticeView::from(&notice)))
}

/// The notices for the caller's tenant, newest first, in the caller's language.
#[utoipa::path(get, path = "/api/v1/notices", tag = "notices",
    responses((status = 200, body = Vec<NoticeView>)))]
pub(super) async fn for_user(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<NoticeView>>, ApiError> {
    let language = notices::language_of(&state.service, &user).await?;
    let notices = notices::for_user(&state.service, &user).await?;
    Ok(Json(
        notices.iter().map(|n| NoticeView::of(n, language)).collect(),
    ))
}

/// Marks a notice read by the caller.
#[utoipa::path(post, path = "/api/v1/notices/{id}/read", tag = "notices",
    responses((status = 204, description = "read")))]
pub(super) async fn mark_read(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    notices::mark_read(&state.service, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
