//! `/alerts`: the tenant's alerts, open ones first (`?state=open|resolved|all`), and the
//! rows the dashboard shows of the open ones. The same operation as `GET /api/v1/alerts`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::model::{AlertFilter, AlertRecord};
use kura_service::ops::{alerts, machines};
use kura_service::{Service, ServiceResult};
use serde::Deserialize;

use super::Viewer;
use crate::app::AppState;
use crate::web::i18n::Tr;
use crate::web::render;

/// One alert as a page shows it: its words in the viewer's language.
pub struct AlertRow {
    pub alert: AlertRecord,
    pub title: String,
    pub about: String,
    /// How often and when it last happened, if more than once.
    pub repeated: Option<String>,
    /// When and what resolved it.
    pub resolved: Option<String>,
}

/// The tenant's alerts that match `filter`, as rows in the viewer's language.
pub async fn rows(svc: &Service, v: &Viewer, filter: AlertFilter) -> ServiceResult<Vec<AlertRow>> {
    let found = alerts::list(svc, &v.user, filter).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let names: HashMap<String, String> = machines::list(svc, &v.user)
        .await?
        .into_iter()
        .map(|m| (m.id.as_str().to_owned(), m.name))
        .collect();
    Ok(found.into_iter().map(|alert| row(&v.tr, &names, alert)).collect())
}

fn row(tr: &Tr, names: &HashMap<String, String>, alert: AlertRecord) -> AlertRow {
    let machine = alert
        .machine_id
        .as_ref()
        .map(|id| names.get(id.as_str()).cloned().unwrap_or_else(|| id.to_string()));
    let about = match (machine, &alert.plan_name) {
        (None, _) => tr.t("alert-about-tenant"),
        (Some(machine), None) => tr.t1("alert-about-machine", "machine", machine),
        (Some(machine), Some(plan)) => {
            tr.t2("alert-about-machine-plan", ("machine", &machine), ("plan", plan))
        }
    };
    let repeated = (alert.occurrences > 1).then(|| {
        tr.t2(
            "alerts-repeated",
            ("count", &alert.occurrences),
            ("time", &tr.time(&alert.last_ms)),
        )
    });
    let resolved = alert.resolved_ms.map(|at| {
        tr.t2(
            "alerts-resolved-at",
            ("time", &tr.time(&at)),
            ("resolution", &alert.resolution.as_deref().unwrap_or_default()),
        )
    });
    AlertRow {
        title: tr.t(&format!("alert-kind-{}", alert.kind)),
        about,
        repeated,
        resolved,
        alert,
    }
}

#[derive(Template)]
#[template(path = "portal/alerts.html")]
struct AlertsPage {
    v: Viewer,
    rows: Vec<AlertRow>,
    /// `open`, `resolved` or `all`.
    state: &'static str,
}

/// `GET /alerts` query.
#[derive(Deserialize)]
pub(super) struct AlertsQuery {
    state: Option<String>,
}

/// `GET /alerts`.
pub(super) async fn page(
    State(state): State<AppState>,
    v: Viewer,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Response {
    let shown = match query.ok().and_then(|Query(q)| q.state).as_deref() {
        Some("resolved") => "resolved",
        Some("all") => "all",
        _ => "open",
    };
    let open = crate::api::alerts::parse_state(Some(shown)).unwrap_or(Some(true));
    let filter = AlertFilter {
        open,
        ..AlertFilter::default()
    };
    match rows(&state.service, &v, filter).await {
        Ok(rows) => render(
            StatusCode::OK,
            &AlertsPage {
                v,
                rows,
                state: shown,
            },
        ),
        Err(err) => v.error_page(&err, "/"),
    }
}
