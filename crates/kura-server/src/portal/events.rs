//! `/events`: the tenant's event log, newest first, filtered by day range, action and
//! actor, a page at a time, with downloads (CSV, JSON) of everything the filter selects.
//! The downloads are the API's export (`/api/v1/events`), so each is recorded in the log
//! as the API's are.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::audit::Action;
use kura_service::model::EventRecord;
use kura_service::ops::events::{self, EventFilter};
use kura_service::rfc3339;
use serde::Deserialize;

use super::{Viewer, day_start, nonempty, query_string};
use crate::app::AppState;
use crate::web::render;

/// Events per page.
const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub(super) struct EventsQuery {
    /// `YYYY-MM-DD` in the tenant's time zone; the `to` day is included.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    /// The sequence number the page starts below.
    #[serde(default)]
    before: String,
}

/// An action offered by the filter: its wire name and its name in the page's language.
pub struct ActionChoice {
    pub name: &'static str,
    pub label: String,
}

#[derive(Template)]
#[template(path = "portal/events.html")]
struct EventsPage {
    v: Viewer,
    query: EventsQuery,
    actions: Vec<ActionChoice>,
    events: Vec<EventRecord>,
    /// Query strings: the first and the next page, and the downloads of the filtered range.
    first: String,
    next: Option<String>,
    download: String,
    error: Option<String>,
}

/// `GET /events`.
pub(super) async fn page(
    State(state): State<AppState>,
    v: Viewer,
    Query(query): Query<EventsQuery>,
) -> Response {
    let zone = v.tenant.time_zone.clone();
    let day = |text: &str| -> Result<Option<i64>, ()> {
        match text.trim() {
            "" => Ok(None),
            day => day_start(&zone, day).map(Some).ok_or(()),
        }
    };
    let mut actions: Vec<ActionChoice> = Action::ALL
        .iter()
        .map(|action| ActionChoice {
            name: action.as_str(),
            label: v.tr.action(action.as_str()),
        })
        .collect();
    actions.sort_by(|a, b| a.label.cmp(&b.label));
    let (from, to) = match (day(&query.from), day(&query.to)) {
        (Ok(from), Ok(to)) => (from, to.map(|ms| ms + 86_400_000)),
        _ => {
            let error = Some(v.tr.t("error-bad-date"));
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &EventsPage {
                    v,
                    query,
                    actions,
                    events: Vec::new(),
                    first: String::new(),
                    next: None,
                    download: String::new(),
                    error,
                },
            );
        }
    };
    let filter = EventFilter {
        from_ms: from.unwrap_or(i64::MIN),
        to_ms: to.unwrap_or(i64::MAX),
        action: nonempty(&query.action),
        actor: nonempty(&query.actor),
    };
    let before = query.before.trim().parse::<i64>().ok();
    let found = match events::page(&state.service, &v.user, &filter, before, PAGE).await {
        Ok(found) => found,
        Err(err) => return v.error_page(&err, "/"),
    };
    let filter_pairs = [
        ("from", query.from.as_str()),
        ("to", query.to.as_str()),
        ("action", query.action.as_str()),
        ("actor", query.actor.as_str()),
    ];
    let next = found.next_before.map(|seq| {
        let seq = seq.to_string();
        query_string(filter_pairs.into_iter().chain([("before", seq.as_str())]))
    });
    // The API takes moments, not days: the same range, spelled as RFC 3339.
    let (from_time, to_time) = (from.map(rfc3339), to.map(rfc3339));
    let download = query_string([
        ("from", from_time.as_deref().unwrap_or_default()),
        ("to", to_time.as_deref().unwrap_or_default()),
        ("action", filter.action.as_deref().unwrap_or_default()),
        ("actor", filter.actor.as_deref().unwrap_or_default()),
    ]);
    let first = query_string(filter_pairs);
    render(
        StatusCode::OK,
        &EventsPage {
            v,
            query,
            actions,
            events: found.events,
            first,
            next,
            download,
            error: None,
        },
    )
}
