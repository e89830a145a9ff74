//! `/notices`: the provider's notices to the tenant (service changes, maintenance,
//! incidents) in the viewer's language, unread ones marked, each with a button to mark
//! it read; and the rows of the dashboard's banner. The same operations as
//! `GET /api/v1/notices` and `POST /api/v1/notices/{id}/read`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::model::{NoticeKind, TenantNotice};
use kura_service::ops::notices;
use kura_service::{Service, ServiceResult};

use super::Viewer;
use crate::app::AppState;
use crate::web::i18n::Tr;
use crate::web::{render, see_other_with_notice};

/// A notice as a page shows it: its words in the viewer's language.
pub struct NoticeRow {
    pub notice: TenantNotice,
    pub kind_label: String,
    pub title: String,
    pub body: String,
    /// The window, in a sentence, when it has one.
    pub window: Option<String>,
    /// When it was published, and updated if it was.
    pub when: String,
}

impl NoticeRow {
    fn new(tr: &Tr, notice: TenantNotice) -> NoticeRow {
        let record = &notice.notice;
        let (title, body) = record.text.in_language(tr.language);
        let window = (record.starts_ms.is_some() || record.ends_ms.is_some()).then(|| {
            tr.t1(
                "notice-window",
                "window",
                tr.window(record.starts_ms, record.ends_ms),
            )
        });
        let when = if record.revision > 1 {
            tr.t2(
                "notice-updated",
                ("time", &tr.time_long(&record.updated_ms)),
                ("revision", &record.revision),
            )
        } else {
            tr.t1("notice-published", "time", tr.time_long(&record.published_ms))
        };
        NoticeRow {
            kind_label: tr.t(&format!("notice-kind-{}", record.kind.as_str())),
            title: title.to_owned(),
            body: body.to_owned(),
            window,
            when,
            notice,
        }
    }

    /// The badge colour of the kind: incidents stand out.
    pub fn class(&self) -> &'static str {
        match self.notice.notice.kind {
            NoticeKind::Incident => "bad",
            NoticeKind::Maintenance => "warn",
            NoticeKind::Change => "muted",
        }
    }
}

async fn rows(svc: &Service, v: &Viewer) -> ServiceResult<Vec<NoticeRow>> {
    Ok(notices::for_user(svc, &v.user)
        .await?
        .into_iter()
        .map(|notice| NoticeRow::new(&v.tr, notice))
        .collect())
}

/// The dashboard's banner: notices unread, or whose maintenance window is near.
pub async fn banner(svc: &Service, v: &Viewer) -> ServiceResult<Vec<NoticeRow>> {
    Ok(rows(svc, v)
        .await?
        .into_iter()
        .filter(|row| notices::in_banner(&row.notice, v.now_ms))
        .collect())
}

#[derive(Template)]
#[template(path = "portal/notices.html")]
struct NoticesPage {
    v: Viewer,
    rows: Vec<NoticeRow>,
}

/// `GET /notices`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    match rows(&state.service, &v).await {
        Ok(rows) => render(StatusCode::OK, &NoticesPage { v, rows }),
        Err(err) => v.error_page(&err, "/"),
    }
}

/// `POST /notices/{id}/read`.
pub(super) async fn mark_read(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    match notices::mark_read(&state.service, &v.user, &id).await {
        Ok(()) => see_other_with_notice("/notices", &v.tr.t("notice-marked-read")),
        Err(err) => v.error_page(&err, "/notices"),
    }
}
