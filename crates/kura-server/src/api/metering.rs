//! The metering export for billing: every tenant's metered days as JSON or CSV.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use kura_service::model::MeterRow;
use kura_service::ops::metering;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::AppState;
use crate::auth::Operator;
use crate::error::ApiError;

/// `GET /api/v1/operator/usage` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    /// First day, `YYYY-MM-DD` (default: 30 days before `to`).
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today, UTC). At most 366 days in all.
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// Every tenant's metered days, for billing: what was stored (the daily measurement) and
/// what went up and down (counted as it moved).
#[utoipa::path(get, path = "/api/v1/operator/usage", tag = "metering",
    params(UsageQuery),
    responses(
        (status = 200, body = Vec<MeterRow>),
        (status = 200, content_type = "text/csv", description = "with format=csv: a header line, then one line per row", body = String),
    ))]
pub(super) async fn export(
    State(state): State<AppState>,
    operator: Operator,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is not offered: use json or csv"
            )));
        }
    };
    let (from, to) = metering::range(&state.service, query.from.as_deref(), query.to.as_deref())?;
    let rows = metering::export(&state.service, &operator, &from, &to).await?;
    if csv {
        return Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"kura-usage-{from}-{to}.csv\""),
                ),
            ],
            metering::csv(&rows),
        )
            .into_response());
    }
    Ok(Json(rows).into_response())
}
