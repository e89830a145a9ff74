//! `/plans`: the tenant's protection plans — what each backs up, when (its cron schedule
//! and next run, in the tenant's time zone), what it keeps, which machines run it and how
//! their last runs went — with a form to add one; `/plans/{id}` shows the plan's recent
//! runs and changes or deletes it. The forms carry the
//! fields of the JSON API (`sources` and `excludes` one per line, `machines` once per
//! machine ticked) and go through the same operations.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::authz::Permission;
use kura_service::ids::MachineId;
use kura_service::model::{
    DrillFilter, DrillRecord, MachineRecord, PlanRecord, PlanRetention, PlanSpec, RunFilter, RunRecord,
};
use kura_service::ops::plans::{self, PlanChange};
use kura_service::ops::{drills, machines, runs};

use super::Viewer;
use crate::app::AppState;
use crate::web::{render, see_other_with_notice};

/// The fields of the plan form, as typed (shown again when refused).
#[derive(Debug, Clone, Default)]
pub struct PlanForm {
    pub name: String,
    pub kind: String,
    pub sources: String,
    pub excludes: String,
    pub schedule: String,
    /// `keep_last` … `keep_yearly`, in that order.
    pub keep: [String; 6],
    pub bandwidth_limit: String,
    pub pre_hook: String,
    pub post_hook: String,
    pub enabled: bool,
    /// `weekly`, `monthly`, or empty for no drill.
    pub drill: String,
    pub machines: Vec<String>,
}

/// The `keep_*` fields, in the order of [`PlanForm::keep`].
pub const KEEP_FIELDS: [&str; 6] = [
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

impl PlanForm {
    /// A new plan's form: files, daily at 02:00, two weeks of dailies.
    fn new_plan() -> Self {
        PlanForm {
            kind: "files".into(),
            schedule: "0 2 * * *".into(),
            keep: [
                String::new(),
                String::new(),
                "14".into(),
                String::new(),
                String::new(),
                String::new(),
            ],
            enabled: true,
            ..PlanForm::default()
        }
    }

    fn of(spec: &PlanSpec) -> Self {
        let r = spec.retention;
        let count = |n: u32| if n == 0 { String::new() } else { n.to_string() };
        PlanForm {
            name: spec.name.clone(),
            kind: spec.kind.as_str().into(),
            sources: spec.sources.join("\n"),
            excludes: spec.excludes.join("\n"),
            schedule: spec.schedule.clone(),
            keep: [
                count(r.keep_last),
                count(r.keep_hourly),
                count(r.keep_daily),
                count(r.keep_weekly),
                count(r.keep_monthly),
                count(r.keep_yearly),
            ],
            bandwidth_limit: spec.bandwidth_limit.map(|l| l.to_string()).unwrap_or_default(),
            pre_hook: spec.pre_hook.clone().unwrap_or_default(),
            post_hook: spec.post_hook.clone().unwrap_or_default(),
            enabled: spec.enabled,
            drill: spec.drill.map(|d| d.as_str().to_owned()).unwrap_or_default(),
            machines: spec.machines.iter().map(|m| m.as_str().to_owned()).collect(),
        }
    }

    /// Reads a posted form (`machines` may come several times; an unticked `enabled`
    /// does not come at all).
    fn parse(body: &[u8]) -> Self {
        let mut form = PlanForm::default();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            match key.as_ref() {
                "name" => form.name = value,
                "kind" => form.kind = value,
                "sources" => form.sources = value,
                "excludes" => form.excludes = value,
                "schedule" => form.schedule = value,
                "bandwidth_limit" => form.bandwidth_limit = value,
                "pre_hook" => form.pre_hook = value,
                "post_hook" => form.post_hook = value,
                "enabled" => form.enabled = true,
                "drill" => form.drill = value,
                "machines" => form.machines.push(value),
                other => {
                    if let Some(i) = KEEP_FIELDS.iter().position(|f| *f == other) {
                        form.keep[i] = value;
                    }
                }
            }
        }
        form
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn optional(text: &str) -> Option<String> {
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// The plan the form describes; what cannot be read is refused naming its field.
    fn spec(&self) -> Result<PlanSpec, ServiceError> {
        let kind = plans::parse_kind(&self.kind)?;
        let mut counts = [0u32; 6];
        for (i, text) in self.keep.iter().enumerate() {
            let text = text.trim();
            if !text.is_empty() {
                counts[i] = text.parse().map_err(|_| {
                    ServiceError::invalid(format!("{}: {text:?} is not a whole number", KEEP_FIELDS[i]))
                })?;
            }
        }
        let bandwidth_limit = plans::parse_bandwidth_limit(Some(&self.bandwidth_limit))?;
        Ok(PlanSpec {
            name: self.name.clone(),
            kind,
            sources: Self::lines(&self.sources),
            excludes: Self::lines(&self.excludes),
            schedule: self.schedule.clone(),
            retention: PlanRetention {
                keep_last: counts[0],
                keep_hourly: counts[1],
                keep_daily: counts[2],
                keep_weekly: counts[3],
                keep_monthly: counts[4],
                keep_yearly: counts[5],
            },
            bandwidth_limit,
            pre_hook: Self::optional(&self.pre_hook),
            post_hook: Self::optional(&self.post_hook),
            enabled: self.enabled,
            drill: plans::parse_drill(Some(&self.drill))?,
            machines: plans::machine_ids(&self.machines)?,
        })
    }
}

/// Runs shown on a plan's page, and drills on the list and on a plan's page.
const HISTORY: u32 = 20;
const DRILLS_LISTED: u32 = 10;

/// A plan as the list shows it.
pub struct PlanRow {
    pub plan: PlanRecord,
    pub next_run_ms: Option<i64>,
    pub machine_names: Vec<String>,
    /// The latest run on each machine that has run (or missed) it, with the machine's name.
    pub last_runs: Vec<(String, RunRecord)>,
}

#[derive(Template)]
#[template(path = "portal/plans.html")]
struct PlansPage {
    v: Viewer,
    plans: Vec<PlanRow>,
    /// Machines a plan can be given (active ones), for the form.
    machines: Vec<MachineRecord>,
    form: PlanForm,
    /// The plan the form changes (`None`: a new plan).
    editing: Option<PlanRecord>,
    /// The recent runs of the plan the form changes, with their machines' names.
    history: Vec<(String, RunRecord)>,
    /// Recent restore drills (of the plan the form changes, else of every plan), with
    /// their machines' names.
    drills: Vec<(String, DrillRecord)>,
    error: Option<String>,
}

impl PlansPage {
    fn may_change(&self) -> bool {
        self.v.may(Permission::OperateBackups)
    }

    fn ticked(&self, machine: &MachineRecord) -> bool {
        self.form.machines.iter().any(|m| m == machine.id.as_str())
    }

    fn keep_field(&self, i: &usize) -> &'static str {
        KEEP_FIELDS[*i]
    }

    fn keep_label(&self, i: &usize) -> String {
        self.v
            .tr
            .t(&format!("plans-{}", KEEP_FIELDS[*i].replace('_', "-")))
    }

    /// How long a drill took (so far), as "1 min 5 s".
    fn drill_duration(&self, drill: &DrillRecord) -> String {
        let ms = drill.finished_ms.unwrap_or(drill.updated_ms) - drill.started_ms;
        let s = (ms.max(0) + 500) / 1000;
        if s < 60 {
            self.v.tr.t1("duration-s", "s", s)
        } else {
            self.v
                .tr
                .t2("duration-min-s", ("min", &(s / 60)), ("s", &(s % 60)))
        }
    }

    /// "7 daily, 4 weekly", or that it keeps every snapshot.
    fn retention_text(&self, r: &PlanRetention) -> String {
        if r.keeps_all() {
            return self.v.tr.t("plans-keep-all");
        }
        let counts = [
            r.keep_last,
            r.keep_hourly,
            r.keep_daily,
            r.keep_weekly,
            r.keep_monthly,
            r.keep_yearly,
        ];
        counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("{} {n}", self.keep_label(&i)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn show(
    state: &AppState,
    v: Viewer,
    form: PlanForm,
    editing: Option<PlanRecord>,
    error: Option<ServiceError>,
) -> Response {
    let (plans, overview) = match (
        plans::list(&state.service, &v.user).await,
        machines::overview(&state.service, &v.user).await,
    ) {
        (Ok(plans), Ok(overview)) => (plans, overview),
        (Err(err), _) | (_, Err(err)) => return v.error_page(&err, "/"),
    };
    let name_of = |id: &MachineId| {
        overview
            .iter()
            .find(|o| &o.machine.id == id)
            .map_or_else(|| id.to_string(), |o| o.machine.name.clone())
    };
    let history = match &editing {
        Some(plan) => {
            let filter = RunFilter {
                plan: Some(plan.id.clone()),
                limit: HISTORY,
                ..RunFilter::default()
            };
            match runs::list(&state.service, &v.user, filter).await {
                Ok(found) => found.into_iter().map(|r| (name_of(&r.machine_id), r)).collect(),
                Err(err) => return v.error_page(&err, "/plans"),
            }
        }
        None => Vec::new(),
    };
    let filter = DrillFilter {
        plan: editing.as_ref().map(|plan| plan.id.clone()),
        limit: if editing.is_some() { HISTORY } else { DRILLS_LISTED },
        ..DrillFilter::default()
    };
    let drills = match drills::list(&state.service, &v.user, filter).await {
        Ok(found) => found.into_iter().map(|d| (name_of(&d.machine_id), d)).collect(),
        Err(err) => return v.error_page(&err, "/plans"),
    };
    let rows = plans
        .into_iter()
        .map(|plan| PlanRow {
            next_run_ms: plans::next_run_of(&plan.spec, &v.tenant.time_zone, v.now_ms),
            machine_names: plan.spec.machines.iter().map(name_of).collect(),
            last_runs: overview
                .iter()
                .flat_map(|o| o.plan_runs.iter().map(move |r| (o.machine.name.clone(), r)))
                .filter(|(_, r)| r.plan_id == plan.id)
                .map(|(name, r)| (name, r.clone()))
                .collect(),
            plan,
        })
        .collect();
    let machines = overview
        .into_iter()
        .map(|o| o.machine)
        .filter(|m| m.revoked_ms.is_none())
        .collect();
    let status = error
        .as_ref()
        .map_or(StatusCode::OK, |err| crate::error::status_of(err.kind));
    let error = error.map(|err| super::describe(&v.tr, &err).1);
    render(
        status,
        &PlansPage {
            machines,
            v,
            plans: rows,
            form,
            editing,
            history,
            drills,
            error,
        },
    )
}

/// `GET /plans`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    show(&state, v, PlanForm::new_plan(), None, None).await
}

/// `GET /plans/{id}`: the form filled with the plan, to change or delete it.
pub(super) async fn edit(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    match plans::get(&state.service, &v.user, &id).await {
        Ok(plan) => {
            let form = PlanForm::of(&plan.spec);
            show(&state, v, form, Some(plan), None).await
        }
        Err(err) => v.error_page(&err, "/plans"),
    }
}

/// `POST /plans`: a new plan.
pub(super) async fn create(State(state): State<AppState>, v: Viewer, body: Bytes) -> Response {
    let form = PlanForm::parse(&body);
    let created = match form.spec() {
        Ok(spec) => plans::create(&state.service, &v.user, spec).await,
        Err(err) => Err(err),
    };
    match created {
        Ok(plan) => see_other_with_notice("/plans", &v.tr.t1("plans-created", "name", &plan.spec.name)),
        Err(err) => show(&state, v, form, None, Some(err)).await,
    }
}

/// `POST /plans/{id}`: the whole form replaces the plan's fields.
pub(super) async fn change(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = PlanForm::parse(&body);
    let changed = match form.spec() {
        Ok(spec) => plans::update(&state.service, &v.user, &id, PlanChange::from(spec)).await,
        Err(err) => Err(err),
    };
    match changed {
        Ok(plan) => see_other_with_notice("/plans", &v.tr.t1("plans-changed", "name", &plan.spec.name)),
        Err(err) => match plans::get(&state.service, &v.user, &id).await {
            Ok(plan) => show(&state, v, form, Some(plan), Some(err)).await,
            Err(_) => v.error_page(&err, "/plans"),
        },
    }
}

/// `POST /plans/{id}/delete`.
pub(super) async fn delete(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    match plans::delete(&state.service, &v.user, &id).await {
        Ok(()) => see_other_with_notice("/plans", &v.tr.t("plans-deleted")),
        Err(err) => v.error_page(&err, "/plans"),
    }
}
