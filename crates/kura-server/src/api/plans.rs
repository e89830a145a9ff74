//! The tenant's protection plans (the portal's `/plans` does the same): list, show,
//! create, change and delete. The rules are `kura_service::ops::plans`'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kura_service::model::{PlanRecord, PlanRetention, PlanSpec};
use kura_service::ops::plans::{self, PlanChange};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// A protection plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    /// `files` or `image`.
    pub kind: String,
    /// Absolute paths; for an image plan, its one device or image file.
    pub sources: Vec<String>,
    /// Glob patterns left out of file backups.
    pub excludes: Vec<String>,
    /// Five-field cron expression, in the tenant's time zone.
    pub schedule: String,
    pub retention: PlanRetention,
    /// Upload limit, e.g. `20MiB/s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_hook: Option<String>,
    pub enabled: bool,
    /// `weekly` or `monthly`: how often each machine restores the plan's latest snapshot
    /// into a scratch directory and checks every byte (a restore drill); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<String>,
    /// Ids of the machines that run it.
    pub machines: Vec<String>,
    /// RFC 3339, UTC: when the schedule next fires (absent when disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    pub created: String,
    pub updated: String,
}

impl PlanView {
    fn of(plan: PlanRecord, zone: &str, now_ms: i64) -> Self {
        let spec = plan.spec;
        let next_run = plans::next_run_of(&spec, zone, now_ms).map(rfc3339);
        PlanView {
            id: plan.id.as_str().to_owned(),
            name: spec.name,
            kind: spec.kind.as_str().to_owned(),
            sources: spec.sources,
            excludes: spec.excludes,
            schedule: spec.schedule,
            retention: spec.retention,
            bandwidth_limit: spec.bandwidth_limit.map(|l| l.to_string()),
            pre_hook: spec.pre_hook,
            post_hook: spec.post_hook,
            enabled: spec.enabled,
            drill: spec.drill.map(|d| d.as_str().to_owned()),
            machines: spec.machines.iter().map(|m| m.as_str().to_owned()).collect(),
            next_run,
            created: rfc3339(plan.created_ms),
            updated: rfc3339(plan.updated_ms),
        }
    }
}

/// `POST /api/v1/plans`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlanRequest {
    /// 1 to 100 characters, unique in the tenant.
    pub name: String,
    /// `files` or `image`.
    pub kind: String,
    pub sources: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Five-field cron expression (`0 2 * * *`: 02:00 daily), in the tenant's time zone.
    pub schedule: String,
    #[serde(default)]
    pub retention: PlanRetention,
    /// e.g. `20MiB/s`.
    #[serde(default)]
    pub bandwidth_limit: Option<String>,
    /// Image plans only.
    #[serde(default)]
    pub pre_hook: Option<String>,
    #[serde(default)]
    pub post_hook: Option<String>,
    /// `true` unless given.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `weekly` or `monthly` restore drills; absent: none.
    #[serde(default)]
    pub drill: Option<String>,
    /// Ids of the tenant's machines that run it.
    #[serde(default)]
    pub machines: Vec<String>,
}

/// `PATCH /api/v1/plans/{id}`: the fields given replace the plan's; `null` removes
/// `bandwidth_limit`, a hook or the drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlanRequest {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub sources: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    pub schedule: Option<String>,
    pub retention: Option<PlanRetention>,
    #[serde(default, deserialize_with = "super::types::present")]
    pub bandwidth_limit: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::types::present")]
    pub pre_hook: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::types::present")]
    pub post_hook: Option<Option<String>>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::types::present")]
    pub drill: Option<Option<String>>,
    pub machines: Option<Vec<String>>,
}

async fn zone(state: &AppState, user: &User) -> Result<String, ApiError> {
    Ok(kura_service::ops::tenants::current(&state.service, &user.scope)
        .await?
        .time_zone)
}

/// One plan as the API shows it (with its next run in the tenant's zone).
async fn answer(state: &AppState, user: &User, plan: PlanRecord) -> Result<Json<PlanView>, ApiError> {
    let zone = zone(state, user).await?;
    Ok(Json(PlanView::of(plan, &zone, state.service.now_ms())))
}

/// The tenant's protection plans, by name.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans",
    responses((status = 200, body = Vec<PlanView>)))]
pub(super) async fn list(State(state): State<AppState>, user: User) -> Result<Json<Vec<PlanView>>, ApiError> {
    let plans = plans::list(&state.service, &user).await?;
    let zone = zone(&state, &user).await?;
    let now = state.service.now_ms();
    Ok(Json(
        plans.into_iter().map(|p| PlanView::of(p, &zone, now)).collect(),
    ))
}

/// One protection plan.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans",
    responses((status = 200, body = PlanView)))]
pub(super) async fn show(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let plan = plans::get(&state.service, &user, &id).await?;
    answer(&state, &user, plan).await
}

/// Creates a protection plan and assigns it to machines.
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = CreatePlanRequest,
    responses((status = 201, body = PlanView)))]
pub(super) async fn create(
    State(state): State<AppState>,
    user: User,
    ApiJson(request): ApiJson<CreatePlanRequest>,
) -> Result<(StatusCode, Json<PlanView>), ApiError> {
    let spec = PlanSpec {
        name: request.name,
        kind: plans::parse_kind(&request.kind)?,
        sources: request.sources,
        excludes: request.excludes,
        schedule: request.schedule,
        retention: request.retention,
        bandwidth_limit: plans::parse_bandwidth_limit(request.bandwidth_limit.as_deref())?,
        pre_hook: request.pre_hook,
        post_hook: request.post_hook,
        enabled: request.enabled.unwrap_or(true),
        drill: plans::parse_drill(request.drill.as_deref())?,
        machines: plans::machine_ids(&request.machines)?,
    };
    let plan = plans::create(&state.service, &user, spec).await?;
    Ok((StatusCode::CREATED, answer(&state, &user, plan).await?))
}

/// Changes a protection plan: the fields given replace the plan's.
#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", request_body = UpdatePlanRequest,
    responses((status = 200, body = PlanView)))]
pub(super) async fn update(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdatePlanRequest>,
) -> Result<Json<PlanView>, ApiError> {
    let change = PlanChange {
        name: request.name,
        kind: request.kind.as_deref().map(plans::parse_kind).transpose()?,
        sources: request.sources,
        excludes: request.excludes,
        schedule: request.schedule,
        retention: request.retention,
        bandwidth_limit: request
            .bandwidth_limit
            .map(|l| plans::parse_bandwidth_limit(l.as_deref()))
            .transpose()?,
        pre_hook: request.pre_hook,
        post_hook: request.post_hook,
        enabled: request.enabled,
        drill: request
            .drill
            .map(|d| plans::parse_drill(d.as_deref()))
            .transpose()?,
        machines: request.machines.as_deref().map(plans::machine_ids).transpose()?,
    };
    let plan = plans::update(&state.service, &user, &id, change).await?;
    answer(&state, &user, plan).await
}

/// Deletes a protection plan; its snapshots stay.
#[utoipa::path(delete, path = "/api/v1/plans/{id}", tag = "plans",
    responses((status = 204, description = "the plan is gone; its snapshots stay")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    plans::delete(&state.service, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
