//! The tenant's alerts: `GET /api/v1/alerts`, open ones first. The portal's alerts page
//! and dashboard read the same operation.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use kura_service::ids::{MachineId, PlanId};
use kura_service::model::{AlertFilter, AlertKind, AlertRecord};
use kura_service::ops::alerts;
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// One alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    /// `backup-failed`, `backup-missed`, `backup-partial`, `quota-warning`,
    /// `quota-exceeded`, `verify-failed`, `drill-failed` or `machine-silent`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// The plan's name when the alert was raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_name: Option<String>,
    /// RFC 3339, UTC: when it was raised.
    pub time: String,
    /// RFC 3339, UTC: when it last happened again (the raising time if it has not).
    pub last_time: String,
    /// How often it happened while open.
    pub occurrences: u64,
    /// What happened, most recently.
    pub message: String,
    pub resolved: bool,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_time: Option<String>,
    /// What resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

impl From<AlertRecord> for AlertView {
    fn from(alert: AlertRecord) -> Self {
        AlertView {
            id: alert.id.as_str().to_owned(),
            kind: alert.kind.as_str().to_owned(),
            machine_id: alert.machine_id.map(|id| id.as_str().to_owned()),
            plan_id: alert.plan_id.map(|id| id.as_str().to_owned()),
            plan_name: alert.plan_name,
            time: rfc3339(alert.opened_ms),
            last_time: rfc3339(alert.last_ms),
            occurrences: alert.occurrences,
            message: alert.message,
            resolved: alert.resolved_ms.is_some(),
            resolved_time: alert.resolved_ms.map(rfc3339),
            resolution: alert.resolution,
        }
    }
}

/// `GET /api/v1/alerts` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open` (the default), `resolved` or `all`.
    state: Option<String>,
    /// Only alerts of this kind.
    kind: Option<String>,
    /// Only alerts about this machine.
    machine: Option<String>,
    /// Only alerts about this plan.
    plan: Option<String>,
    /// At most this many (default and most: 1000).
    limit: Option<u32>,
}

/// The tenant's alerts: open ones first, then the latest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "plans", params(AlertQuery),
    responses((status = 200, body = [AlertView])))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let Query(q) = query.map_err(|err| ApiError::invalid(err.body_text()))?;
    let filter = AlertFilter {
        open: parse_state(q.state.as_deref())?,
        kind: q
            .kind
            .map(|k| {
                AlertKind::parse(&k).ok_or_else(|| {
                    let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                    ApiError::invalid(format!("kind: {k:?} is not one of {}", kinds.join(", ")))
                })
            })
            .transpose()?,
        machine: super::id_filter("machine", q.machine, MachineId::parse)?,
        plan: super::id_filter("plan", q.plan, PlanId::parse)?,
        limit: q.limit.unwrap_or(0),
    };
    let found = alerts::list(&state.service, &user, filter).await?;
    Ok(Json(found.into_iter().map(AlertView::from).collect()))
}

/// `open` (the default), `resolved` or `all`, as the filter's `open`.
pub(crate) fn parse_state(state: Option<&str>) -> Result<Option<bool>, ApiError> {
    match state.unwrap_or("open") {
        "open" => Ok(Some(true)),
        "resolved" => Ok(Some(false)),
        "all" => Ok(None),
        other => Err(ApiError::invalid(format!(
            "state: {other:?} is not open, resolved or all"
        ))),
    }
}
