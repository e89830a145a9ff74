//! `/work-log`: the operator work log, newest first, filtered by day range (Japan time),
//! action and actor, a page at a time, with downloads (CSV, JSON; the API's export, so
//! each is recorded) and a check of every event chain. The same operations as
//! `/api/v1/operator/events` and `/api/v1/operator/events/verify`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use kura_service::ops::events;

use super::{CONSOLE_ZONE, Desk};
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::web::event_log::{EventLogQuery, EventLogView};
use crate::web::{render, see_other_with_notice};

#[derive(Template)]
#[template(path = "console/work_log.html")]
struct WorkLogPage {
    d: Desk,
    log: EventLogView,
}

/// `GET /work-log`.
pub(super) async fn page(
    State(state): State<AppState>,
    d: Desk,
    Query(query): Query<EventLogQuery>,
) -> Response {
    let (service, operator) = (&state.service, &d.operator);
    let built = EventLogView::build(
        query,
        CONSOLE_ZONE,
        &d.tr,
        |action| action.log().contains("operators"),
        move |filter, before, limit| async move {
            events::work_log_page(service, operator, &filter, before, limit).await
        },
    )
    .await;
    match built {
        Ok((status, log)) => render(status, &WorkLogPage { d, log }),
        Err(err) => d.error_page(&err, "/"),
    }
}

/// `POST /work-log/verify`: checks every chain and says what it found.
pub(super) async fn verify(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
) -> Response {
    match events::check_chains(&state.service, &d.operator, &caller).await {
        Ok(Ok(log)) => see_other_with_notice(
            "/work-log",
            &d.tr.t2(
                "console-work-log-intact",
                ("chains", &log.chains),
                ("events", &log.events),
            ),
        ),
        Ok(Err(broken)) => see_other_with_notice(
            "/work-log",
            &d.tr.t1("console-work-log-broken", "problem", broken.to_string()),
        ),
        Err(err) => d.error_page(&err, "/work-log"),
    }
}
