//! The tenant's machines for its own users (the portal's `/machines` does the same):
//! list with what each has backed up, rename, revoke, registration tokens for new
//! machines; and the tenant's usage with its history (the dashboard's chart).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kura_service::ops::{machines, usage};
use kura_service::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::types::{MachineView, RegistrationTokenView};
use crate::app::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// `PATCH /api/v1/machines/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMachineRequest {
    /// The name people see (1 to 255 characters).
    pub name: String,
}

/// The newest backup of one source of a machine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceStatus {
    /// The source's name (what `kura backup` was given, or `--source`).
    pub source: String,
    /// `files` or `image`.
    pub kind: String,
    pub snapshot_id: String,
    /// RFC 3339, UTC: when the backup started.
    pub time: String,
    /// Logical bytes in the snapshot.
    pub bytes: u64,
    /// Files that could not be read and are missing from it (0: complete).
    pub errors: u64,
}

/// A machine with what it has backed up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MachineStatus {
    #[serde(flatten)]
    pub machine: MachineView,
    /// RFC 3339, UTC: when its agent was last authenticated (to within five minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Its snapshots in the vault.
    pub snapshots: u64,
    /// Stored bytes its backups added (data several machines share counts for the one
    /// that sent it first).
    pub bytes_added: u64,
    /// RFC 3339, UTC: when its newest backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// The newest backup of each source.
    pub sources: Vec<SourceStatus>,
    /// The latest run of each protection plan it has run (or missed).
    pub last_runs: Vec<kura_api::agent::RunView>,
}

impl From<&machines::MachineOverview> for MachineStatus {
    fn from(overview: &machines::MachineOverview) -> Self {
        MachineStatus {
            machine: MachineView::from(&overview.machine),
            last_seen: overview.machine.last_seen_ms.map(rfc3339),
            snapshots: overview.activity.snapshots,
            bytes_added: overview.activity.bytes_added,
            last_backup: overview.activity.last_backup_ns.map(ns_rfc3339),
            sources: overview
                .latest
                .iter()
                .map(|backup| SourceStatus {
                    source: backup.facts.source.clone(),
                    kind: backup.facts.kind.to_string(),
                    snapshot_id: backup.snapshot_id.clone(),
                    time: ns_rfc3339(backup.facts.time_ns),
                    bytes: backup.facts.bytes,
                    errors: backup.facts.errors,
                })
                .collect(),
            last_runs: overview
                .plan_runs
                .iter()
                .cloned()
                .map(super::runs::run_view)
                .collect(),
        }
    }
}

fn ns_rfc3339(ns: i64) -> String {
    rfc3339(ns.div_euclid(1_000_000))
}

/// The tenant's machines, oldest first, revoked ones included, each with its snapshots
/// summed and the newest backup of each source.
#[utoipa::path(get, path = "/api/v1/machines", tag = "machines",
    responses((status = 200, body = Vec<MachineStatus>)))]
pub(super) async fn list(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Vec<MachineStatus>>, ApiError> {
    let overview = machines::overview(&state.service, &user).await?;
    Ok(Json(overview.iter().map(MachineStatus::from).collect()))
}

/// `GET /api/v1/usage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageQuery {
    /// Days of history, today included (1–366; 30 when absent).
    days: Option<u32>,
}

/// One day of the usage history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageDayView {
    /// `YYYY-MM-DD` in the tenant's time zone.
    pub day: String,
    pub stored_bytes: u64,
    pub snapshots: u64,
    pub machines: u64,
}

/// `GET /api/v1/usage`: usage now against the contract, and day by day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Stored bytes after dedup and compression: what counts against the quota.
    pub stored_bytes: u64,
    pub quota_bytes: u64,
    pub snapshots: u64,
    /// Machines registered and not revoked.
    pub machines: u64,
    pub max_machines: u32,
    /// Oldest first, ending today (measured now). A day is the last hourly measurement
    /// of it; days the service did not measure are absent.
    pub history: Vec<UsageDayView>,
}

/// The tenant's usage now and over the last days.
#[utoipa::path(get, path = "/api/v1/usage", tag = "machines", params(UsageQuery),
    responses((status = 200, body = UsageView)))]
pub(super) async fn usage(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageView>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::invalid(format!("invalid query: {}", err.body_text())))?;
    let report = usage::report(&state.service, &user, query.days.unwrap_or(30)).await?;
    Ok(Json(UsageView {
        stored_bytes: report.stored_bytes,
        quota_bytes: report.quota_bytes,
        snapshots: report.snapshots,
        machines: report.machines,
        max_machines: report.max_machines,
        history: report
            .history
            .into_iter()
            .map(|day| UsageDayView {
                day: day.day,
                stored_bytes: day.stored_bytes,
                snapshots: day.snapshots,
                machines: day.machines,
            })
            .collect(),
    }))
}

/// Renames a machine.
#[utoipa::path(patch, path = "/api/v1/machines/{id}", tag = "machines",
    request_body = UpdateMachineRequest,
    responses((status = 200, body = MachineView)))]
pub(super) async fn update(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateMachineRequest>,
) -> Result<Json<MachineView>, ApiError> {
    let machine = machines::rename(&state.service, &user, &id, &request.name).await?;
    Ok(Json(MachineView::from(&machine)))
}

/// Revokes a machine's credential at once; its snapshots stay.
#[utoipa::path(delete, path = "/api/v1/machines/{id}", tag = "machines",
    responses((status = 204, description = "the machine's credential no longer works")))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    machines::revoke(&state.service, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time registration token for a new machine (`kura register --token …`).
#[utoipa::path(post, path = "/api/v1/registration-tokens", tag = "machines",
    responses((status = 201, body = RegistrationTokenView)))]
pub(super) async fn issue_registration_token(
    State(state): State<AppState>,
    user: User,
) -> Result<(StatusCode, Json<RegistrationTokenView>), ApiError> {
    let token = machines::issue_registration_token(&state.service, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegistrationTokenView {
            registration_token: token.token,
            expires: rfc3339(token.expires_ms),
        }),
    ))
}
