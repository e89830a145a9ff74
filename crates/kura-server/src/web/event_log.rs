//! The event-log page both front ends show — the portal's `/events` (a tenant's log) and
//! the console's `/work-log` (the operator work log): newest first, filtered by a day
//! range in the viewer's time zone, action and actor, a page at a time, with the query
//! strings of the next page and of the downloads (the API's export, which records each).

use std::future::Future;

use axum::http::StatusCode;
use kura_service::audit::Action;
use kura_service::model::EventRecord;
use kura_service::ops::events::{EventFilter, EventPage};
use kura_service::{ServiceResult, rfc3339};
use serde::Deserialize;

use super::i18n::Tr;

/// Events per page.
const PAGE: u32 = 50;

/// The filter form's fields, as typed.
#[derive(Deserialize, Default)]
pub struct EventLogQuery {
    /// `YYYY-MM-DD` in the viewer's time zone; the `to` day is included.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub actor: String,
    /// The sequence number the page starts below.
    #[serde(default)]
    pub before: String,
}

impl EventLogQuery {
    /// Whether the page shows the newest events unfiltered.
    pub fn is_plain(&self) -> bool {
        [&self.before, &self.from, &self.to, &self.action, &self.actor]
            .iter()
            .all(|field| field.is_empty())
    }
}

/// An action offered by the filter: its wire name and its name in the page's language.
pub struct ActionChoice {
    pub name: &'static str,
    pub label: String,
}

/// One page of a log as the templates show it.
pub struct EventLogView {
    pub query: EventLogQuery,
    pub actions: Vec<ActionChoice>,
    pub events: Vec<EventRecord>,
    /// Query strings: the first and the next page, and the downloads of the filtered range.
    pub first: String,
    pub next: Option<String>,
    pub download: String,
    /// A date that could not be read (then nothing was fetched).
    pub error: Option<String>,
}

impl EventLogView {
    /// Reads the filter in `zone`, offers the actions `offered` keeps, and fetches the
    /// page with `fetch(filter, before, limit)`. A date that does not parse answers `422`
    /// with the form and its error.
    pub async fn build<Fut>(
        query: EventLogQuery,
        zone: &str,
        tr: &Tr,
        offered: impl Fn(&Action) -> bool,
        fetch: impl FnOnce(EventFilter, Option<i64>, u32) -> Fut,
    ) -> ServiceResult<(StatusCode, EventLogView)>
    where
        Fut: Future<Output = ServiceResult<EventPage>>,
    {
        let day = |text: &str| -> Result<Option<i64>, ()> {
            match text.trim() {
                "" => Ok(None),
                day => day_start(zone, day).map(Some).ok_or(()),
            }
        };
        let mut actions: Vec<ActionChoice> = Action::ALL
            .iter()
            .filter(|action| offered(action))
            .map(|action| ActionChoice {
                name: action.as_str(),
                label: tr.action(action.as_str()),
            })
            .collect();
        actions.sort_by(|a, b| a.label.cmp(&b.label));
        let mut view = EventLogView {
            query,
            actions,
            events: Vec::new(),
            first: String::new(),
            next: None,
            download: String::new(),
            error: None,
        };
        let (Ok(from), Ok(to)) = (day(&view.query.from), day(&view.query.to)) else {
            view.error = Some(tr.t("error-bad-date"));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, view));
        };
        let to = to.map(|ms| ms + 86_400_000);
        let query = &view.query;
        let filter = EventFilter {
            from_ms: from.unwrap_or(i64::MIN),
            to_ms: to.unwrap_or(i64::MAX),
            action: nonempty(&query.action),
            actor: nonempty(&query.actor),
        };
        let before = query.before.trim().parse::<i64>().ok();
        // The API takes moments, not days: the same range, spelled as RFC 3339.
        let (from_time, to_time) = (from.map(rfc3339), to.map(rfc3339));
        let download = query_string([
            ("from", from_time.as_deref().unwrap_or_default()),
            ("to", to_time.as_deref().unwrap_or_default()),
            ("action", filter.action.as_deref().unwrap_or_default()),
            ("actor", filter.actor.as_deref().unwrap_or_default()),
        ]);
        let found = fetch(filter, before, PAGE).await?;
        let filter_pairs = [
            ("from", query.from.as_str()),
            ("to", query.to.as_str()),
            ("action", query.action.as_str()),
            ("actor", query.actor.as_str()),
        ];
        view.next = found.next_before.map(|seq| {
            let seq = seq.to_string();
            query_string(filter_pairs.into_iter().chain([("before", seq.as_str())]))
        });
        view.first = query_string(filter_pairs);
        view.download = download;
        view.events = found.events;
        Ok((StatusCode::OK, view))
    }
}

/// The first moment of `day` (`YYYY-MM-DD`) in `zone`.
pub fn day_start(zone: &str, day: &str) -> Option<i64> {
    let date: jiff::civil::Date = day.trim().parse().ok()?;
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    Some(date.to_zoned_datetime(tz).ok()?.timestamp().as_millisecond())
}

/// A filter field as typed, trimmed; `None` when empty.
pub fn nonempty(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `key=value&…` of the pairs that are not empty: a filtered list's links keep its filter.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.into_iter().filter(|(_, value)| !value.is_empty()))
        .finish()
}
