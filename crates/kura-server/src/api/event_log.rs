//! The event logs as the API serves them: a tenant's (`GET /api/v1/events`, in the
//! tenant's time zone) and the operator work log (`GET /api/v1/operator/events`, in UTC),
//! as JSON or CSV with one filter syntax; and the check of every chain.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kura_service::model::EventRecord;
use kura_service::ops::events::{self as event_ops, EventFilter};
use kura_service::rfc3339;
use serde::Deserialize;

use super::parse_time;
use super::types::{ChainCheck, EventView};
use crate::app::AppState;
use crate::auth::{CallerInfo, Operator};
use crate::error::ApiError;

/// Which events to export, and how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// RFC 3339; defaults to the beginning.
    from: Option<String>,
    /// RFC 3339, exclusive; defaults to now.
    to: Option<String>,
    /// Only this action (its name in `docs/events.md`, such as `login`).
    action: Option<String>,
    /// Only this actor (a login ID, `agent:…`, `service`, …), exactly as recorded.
    actor: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// How an export is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventFormat {
    Json,
    Csv,
}

impl EventFormat {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            EventFormat::Json => "json",
            EventFormat::Csv => "csv",
        }
    }

    /// The rows as JSON, or as CSV downloaded as `NAME.csv`; `time` in `zone`.
    pub(super) fn answer(self, records: Vec<EventRecord>, zone: &jiff::tz::TimeZone, name: &str) -> Response {
        let views: Vec<EventView> = records.into_iter().map(|record| view(record, zone)).collect();
        if self == EventFormat::Json {
            return Json(views).into_response();
        }
        let mut out = String::from("seq,time,time_utc,actor,source,action,target,result,request_id\r\n");
        for view in &views {
            let fields = [
                view.seq.to_string(),
                view.time.clone(),
                view.time_utc.clone(),
                view.actor.clone(),
                view.source.clone(),
                view.action.clone(),
                view.target.clone(),
                view.result.clone(),
                view.request_id.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            out,
        )
            .into_response()
    }
}

impl EventsQuery {
    /// The filter and format asked for; `to` defaults to just after `now_ms`.
    pub(super) fn read(
        query: Result<Query<EventsQuery>, QueryRejection>,
        now_ms: i64,
    ) -> Result<(EventFilter, EventFormat), ApiError> {
        let Query(query) =
            query.map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))?;
        let from = parse_time("from", query.from.as_deref())?.unwrap_or(0);
        let to = parse_time("to", query.to.as_deref())?.unwrap_or(now_ms.saturating_add(1));
        let format = match query.format.as_deref().unwrap_or("json") {
            "json" => EventFormat::Json,
            "csv" => EventFormat::Csv,
            _ => return Err(ApiError::invalid("format must be json or csv")),
        };
        let nonempty = |text: Option<String>| text.filter(|t| !t.trim().is_empty());
        let filter = EventFilter {
            from_ms: from,
            to_ms: to,
            action: nonempty(query.action),
            actor: nonempty(query.actor),
        };
        Ok((filter, format))
    }
}

fn view(record: EventRecord, zone: &jiff::tz::TimeZone) -> EventView {
    let timestamp =
        jiff::Timestamp::from_millisecond(record.event.time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    EventView {
        seq: record.seq,
        time: timestamp
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        time_utc: rfc3339(record.event.time_ms),
        actor: record.event.actor,
        source: record.event.source,
        action: record.event.action,
        target: record.event.target,
        result: record.event.result,
        request_id: record.event.request_id,
    }
}

/// The operator work log between `from` and `to`, as JSON or CSV (times in UTC); the
/// download is itself recorded (`operator.log.export`).
#[utoipa::path(get, path = "/api/v1/operator/events", tag = "operators", params(EventsQuery),
    responses((status = 200, description = "the operator work log, oldest first", content((Vec<EventView> = "application/json"), (String = "text/csv")))))]
pub(super) async fn work_log(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, format) = EventsQuery::read(query, state.clock().now_ms())?;
    let records =
        event_ops::export_work_log(&state.service, &operator, &caller, &filter, format.as_str()).await?;
    Ok(format.answer(records, &jiff::tz::TimeZone::UTC, "kura-work-log"))
}

/// Checks every event chain (the tenants' logs and the work log) from the first row to
/// its head, as `kura-server audit verify` does offline; recorded as `operator.log.verify`.
#[utoipa::path(get, path = "/api/v1/operator/events/verify", tag = "operators",
    responses((status = 200, body = ChainCheck)))]
pub(super) async fn verify(
    State(state): State<AppState>,
    operator: Operator,
    CallerInfo(caller): CallerInfo,
) -> Result<Json<ChainCheck>, ApiError> {
    let check = match event_ops::check_chains(&state.service, &operator, &caller).await? {
        Ok(log) => ChainCheck {
            intact: true,
            chains: log.chains,
            events: log.events,
            problem: None,
        },
        Err(broken) => ChainCheck {
            intact: false,
            chains: 0,
            events: 0,
            problem: Some(broken.to_string()),
        },
    };
    Ok(Json(check))
}

/// One CSV field (RFC 4180 quoting). A field a spreadsheet would run as a formula gets a
/// leading apostrophe, since log fields carry what users typed.
fn csv_field(field: &str) -> String {
    let field = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
