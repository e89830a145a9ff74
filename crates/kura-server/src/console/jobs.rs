//! `/jobs`: the service's job runs, newest first, filtered by kind, status and tenant,
//! with why each failed run failed; and a run started now (gc, verify or metering of one
//! tenant's vault, expiry or mail delivery for the service). The same operations as
//! `/api/v1/operator/jobs`.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::ids::TenantId;
use kura_service::model::{JobKind, JobRecord, JobStatus, TenantRecord};
use kura_service::ops::{jobs, tenants};
use serde::Deserialize;

use super::Desk;
use crate::app::AppState;
use crate::portal::account::{Outcome, status_after};
use crate::web::{render, see_other_with_notice};

/// Runs one page lists.
const SHOWN: u32 = 100;

/// The filter as typed; empty fields select everything.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct JobsQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    tenant: String,
}

/// The run-now form.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct RunForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    tenant: String,
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    d: Desk,
    query: JobsQuery,
    runs: Vec<JobRecord>,
    tenants: Vec<TenantRecord>,
    codes: HashMap<TenantId, String>,
    kinds: Vec<JobKind>,
    /// The kinds an operator starts by hand (a purge follows a termination).
    runnable: Vec<JobKind>,
    statuses: Vec<JobStatus>,
    may_run: bool,
    outcome: Option<Outcome>,
}

impl JobsPage {
    fn tenant_code(&self, run: &JobRecord) -> String {
        run.tenant_id.as_ref().map_or_else(String::new, |id| {
            self.codes.get(id).cloned().unwrap_or_else(|| id.to_string())
        })
    }

    fn kind_label(&self, kind: &JobKind) -> String {
        self.d.tr.t(&format!("job-kind-{}", kind.as_str()))
    }

    fn status_label(&self, status: &JobStatus) -> String {
        self.d.tr.t(&format!("job-status-{}", status.as_str()))
    }

    fn status_class(&self, status: &JobStatus) -> &'static str {
        match status {
            JobStatus::Succeeded => "ok",
            JobStatus::Failed => "bad",
            JobStatus::Running => "warn",
            JobStatus::Queued => "muted",
        }
    }

    /// How long a finished run took, in seconds.
    fn took(&self, run: &JobRecord) -> String {
        match (run.started_ms, run.finished_ms) {
            (Some(started), Some(finished)) => {
                let seconds = finished.saturating_sub(started) as f64 / 1000.0;
                self.d.tr.t1("job-seconds", "seconds", format!("{seconds:.1}"))
            }
            _ => String::new(),
        }
    }

    fn is_filtered(&self) -> bool {
        !(self.query.kind.is_empty() && self.query.status.is_empty() && self.query.tenant.is_empty())
    }
}

async fn show(state: &AppState, d: Desk, query: JobsQuery, outcome: Option<Outcome>) -> Response {
    let found = async {
        let filter = jobs::filter(
            given(&query.kind),
            given(&query.status),
            given(&query.tenant),
            Some(SHOWN),
        )?;
        let runs = jobs::list(&state.service, &d.operator, &filter).await?;
        let tenants = tenants::list(&state.service, &d.operator).await?;
        Ok::<_, ServiceError>((runs, tenants))
    };
    let (runs, tenants) = match found.await {
        Ok(found) => found,
        Err(err) => return d.error_page(&err, "/jobs"),
    };
    let codes = tenants
        .iter()
        .map(|tenant| (tenant.id.clone(), tenant.service_code.clone()))
        .collect();
    let status = status_after(&outcome, StatusCode::OK);
    let may_run = d.operator.role().allows(Permission::RunJobs);
    render(
        status,
        &JobsPage {
            d,
            query,
            runs,
            tenants,
            codes,
            kinds: JobKind::ALL.to_vec(),
            runnable: JobKind::ALL
                .into_iter()
                .filter(|kind| *kind != JobKind::Purge)
                .collect(),
            statuses: JobStatus::ALL.to_vec(),
            may_run,
            outcome,
        },
    )
}

/// `GET /jobs`.
pub(super) async fn page(State(state): State<AppState>, d: Desk, Query(query): Query<JobsQuery>) -> Response {
    show(&state, d, query, None).await
}

/// `POST /jobs`: queues a run now (or answers the same run already waiting).
pub(super) async fn run(State(state): State<AppState>, d: Desk, Form(form): Form<RunForm>) -> Response {
    let kind = form.kind.trim();
    let tenant = given(&form.tenant);
    // Said in the page's language before asking; the operation refuses the same.
    if let Some(per_tenant) = JobKind::parse(kind).map(JobKind::per_tenant)
        && per_tenant != tenant.is_some()
    {
        let key = if per_tenant {
            "console-job-needs-tenant"
        } else {
            "console-job-whole-service-only"
        };
        let label = d.tr.t(&format!("job-kind-{kind}"));
        let outcome = Outcome::invalid(d.tr.t1(key, "kind", label));
        return show(&state, d, JobsQuery::default(), Some(outcome)).await;
    }
    match jobs::run_now(&state.service, &d.operator, kind, tenant).await {
        Ok(run) => {
            let kind = d.tr.t(&format!("job-kind-{}", run.kind.as_str()));
            see_other_with_notice(
                "/jobs",
                &d.tr.t2("console-job-queued", ("kind", &kind), ("id", &run.id)),
            )
        }
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            show(&state, d, JobsQuery::default(), Some(outcome)).await
        }
    }
}

/// A filter field as typed, when not empty.
fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}
