//! `/events`: the tenant's event log, newest first, filtered by day range, action and
//! actor, a page at a time, with downloads (CSV, JSON) of everything the filter selects.
//! The downloads are the API's export (`/api/v1/events`), so each is recorded in the log
//! as the API's are.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use kura_service::ops::events;

use super::Viewer;
use crate::app::AppState;
use crate::web::event_log::{EventLogQuery, EventLogView};
use crate::web::render;

#[derive(Template)]
#[template(path = "portal/events.html")]
struct EventsPage {
    v: Viewer,
    log: EventLogView,
}

/// `GET /events`.
pub(super) async fn page(
    State(state): State<AppState>,
    v: Viewer,
    Query(query): Query<EventLogQuery>,
) -> Response {
    let (service, user) = (&state.service, &v.user);
    let built = EventLogView::build(
        query,
        &v.tenant.time_zone,
        &v.tr,
        |_| true,
        move |filter, before, limit| async move { events::page(service, user, &filter, before, limit).await },
    )
    .await;
    match built {
        Ok((status, log)) => render(status, &EventsPage { v, log }),
        Err(err) => v.error_page(&err, "/"),
    }
}
