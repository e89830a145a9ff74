//! `/notices`: every notice the provider published, and the form to publish one (kind,
//! title and body in Japanese and/or English, an optional window, every tenant or some
//! by service code); `/notices/{id}`: a notice and the form to update it (a follow-up,
//! mailed again). The same operations as `/api/v1/operator/notices`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::model::{NoticeKind, NoticeRecord, NoticeText, TenantRecord};
use kura_service::ops::notices::{self, Audience, NoticeDraft};
use kura_service::ops::tenants;
use serde::Deserialize;

use super::{CONSOLE_ZONE, Desk};
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::portal::account::{Outcome, status_after};
use crate::web::{render, see_other_with_notice};

/// The notice form as sent (and shown again after a refusal).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct NoticeForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    title_ja: String,
    #[serde(default)]
    body_ja: String,
    #[serde(default)]
    title_en: String,
    #[serde(default)]
    body_en: String,
    /// `YYYY-MM-DDTHH:MM` in the console's zone (a `datetime-local` field).
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    /// `all` or `some`.
    #[serde(default)]
    audience: String,
    /// Service codes (or ids), separated by commas, spaces or lines.
    #[serde(default)]
    tenants: String,
}

impl NoticeForm {
    fn of(notice: &NoticeRecord) -> NoticeForm {
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        NoticeForm {
            kind: notice.kind.as_str().to_owned(),
            title_ja: text(&notice.text.title_ja),
            body_ja: text(&notice.text.body_ja),
            title_en: text(&notice.text.title_en),
            body_en: text(&notice.text.body_en),
            starts: notice.starts_ms.map(local_input).unwrap_or_default(),
            ends: notice.ends_ms.map(local_input).unwrap_or_default(),
            audience: if notice.all_tenants { "all" } else { "some" }.to_owned(),
            tenants: String::new(),
        }
    }

    /// The draft the form describes, or the field that is wrong.
    fn draft(&self) -> Result<NoticeDraft, ServiceError> {
        let kind = NoticeKind::parse(&self.kind)
            .ok_or_else(|| ServiceError::invalid("kind: choose change, maintenance or incident"))?;
        let optional = |text: &str| Some(text.to_owned()).filter(|t| !t.trim().is_empty());
        Ok(NoticeDraft {
            kind,
            text: NoticeText {
                title_ja: optional(&self.title_ja),
                title_en: optional(&self.title_en),
                body_ja: optional(&self.body_ja),
                body_en: optional(&self.body_en),
            },
            starts_ms: local_time("starts", &self.starts)?,
            ends_ms: local_time("ends", &self.ends)?,
        })
    }

    fn audience(&self) -> Audience {
        if self.audience == "all" {
            return Audience::All;
        }
        Audience::Tenants(
            self.tenants
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// A `datetime-local` value in the console's zone, as milliseconds; empty is none.
fn local_time(field: &str, text: &str) -> Result<Option<i64>, ServiceError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || ServiceError::invalid(format!("{field}: give a date and time such as 2026-12-05T01:00"));
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| invalid())?;
    let zone = jiff::tz::TimeZone::get(CONSOLE_ZONE).map_err(|_| invalid())?;
    let zoned = civil.to_zoned_datetime(zone).map_err(|_| invalid())?;
    Ok(Some(zoned.timestamp().as_millisecond()))
}

/// Milliseconds as a `datetime-local` value in the console's zone.
fn local_input(ms: i64) -> String {
    let zone = jiff::tz::TimeZone::get(CONSOLE_ZONE).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned_datetime(zone).strftime("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/notices.html")]
struct NoticesPage {
    d: Desk,
    notices: Vec<NoticeRecord>,
    tenants: Vec<TenantRecord>,
    form: NoticeForm,
    outcome: Option<Outcome>,
    may_publish: bool,
}

impl NoticesPage {
    fn title(&self, notice: &NoticeRecord) -> String {
        notice.text.in_language(self.d.tr.language).0.to_owned()
    }

    fn audience(&self, notice: &NoticeRecord) -> String {
        if notice.all_tenants {
            return self.d.tr.t("console-notice-all-tenants");
        }
        notice
            .tenants
            .iter()
            .map(|id| {
                self.tenants
                    .iter()
                    .find(|t| &t.id == id)
                    .map_or_else(|| id.to_string(), |t| t.service_code.clone())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn show(state: &AppState, d: Desk, form: NoticeForm, outcome: Option<Outcome>) -> Response {
    let listed = async {
        Ok::<_, ServiceError>((
            notices::list(&state.service, &d.operator).await?,
            tenants::list(&state.service, &d.operator).await?,
        ))
    };
    let (notices, tenants) = match listed.await {
        Ok(listed) => listed,
        Err(err) => return d.error_page(&err, "/"),
    };
    let status = status_after(&outcome, StatusCode::OK);
    let may_publish = d.operator.role().allows(Permission::Communicate);
    render(
        status,
        &NoticesPage {
            d,
            notices,
            tenants,
            form,
            outcome,
            may_publish,
        },
    )
}

/// `GET /notices`.
pub(super) async fn page(State(state): State<AppState>, d: Desk) -> Response {
    let form = NoticeForm {
        kind: "maintenance".to_owned(),
        audience: "all".to_owned(),
        ..NoticeForm::default()
    };
    show(&state, d, form, None).await
}

/// `POST /notices`: publishes.
pub(super) async fn publish(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Form(form): Form<NoticeForm>,
) -> Response {
    let published = match form.draft() {
        Ok(draft) => notices::publish(&state.service, &d.operator, &caller, draft, &form.audience()).await,
        Err(err) => Err(err),
    };
    match published {
        Ok(notice) => see_other_with_notice(
            &format!("/notices/{}", notice.id),
            &d.tr.t("console-notice-published"),
        ),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, form, Some(outcome)).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/notice.html")]
struct NoticePage {
    d: Desk,
    notice: NoticeRecord,
    /// Where its update form posts.
    action: String,
    audience: String,
    form: NoticeForm,
    outcome: Option<Outcome>,
    may_publish: bool,
}

async fn show_one(
    state: &AppState,
    d: Desk,
    id: &str,
    form: Option<NoticeForm>,
    outcome: Option<Outcome>,
) -> Response {
    let found = async {
        Ok::<_, ServiceError>((
            notices::get(&state.service, &d.operator, id).await?,
            tenants::list(&state.service, &d.operator).await?,
        ))
    };
    let (notice, tenants) = match found.await {
        Ok(found) => found,
        Err(err) => return d.error_page(&err, "/notices"),
    };
    let audience = if notice.all_tenants {
        d.tr.t("console-notice-all-tenants")
    } else {
        notice
            .tenants
            .iter()
            .map(|id| {
                tenants
                    .iter()
                    .find(|t| &t.id == id)
                    .map_or_else(|| id.to_string(), |t| format!("{} ({})", t.service_code, t.name))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let status = status_after(&outcome, StatusCode::OK);
    let may_publish = d.operator.role().allows(Permission::Communicate);
    render(
        status,
        &NoticePage {
            form: form.unwrap_or_else(|| NoticeForm::of(&notice)),
            action: format!("/notices/{}", notice.id),
            d,
            notice,
            audience,
            outcome,
            may_publish,
        },
    )
}

impl NoticePage {
    fn title(&self) -> &str {
        self.notice.text.in_language(self.d.tr.language).0
    }

    fn window(&self) -> String {
        self.d.tr.window(self.notice.starts_ms, self.notice.ends_ms)
    }
}

/// `GET /notices/{id}`.
pub(super) async fn notice(State(state): State<AppState>, d: Desk, Path(id): Path<String>) -> Response {
    show_one(&state, d, &id, None, None).await
}

/// `POST /notices/{id}`: an update (a follow-up), mailed again.
pub(super) async fn update(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
    Form(form): Form<NoticeForm>,
) -> Response {
    let updated = match form.draft() {
        Ok(draft) => notices::update(&state.service, &d.operator, &caller, &id, draft).await,
        Err(err) => Err(err),
    };
    match updated {
        Ok(notice) => see_other_with_notice(
            &format!("/notices/{}", notice.id),
            &d.tr.t1("console-notice-updated", "revision", notice.revision),
        ),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show_one(&state, d, &id, Some(form), Some(outcome)).await
        }
    }
}
