//! Agent API (customer listener): registration with a one-time token, and the routes of
//! registered agents, which all take an [`Agent`]: identity, plans and runs.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use kura_api::agent::{ReportRun, RunView, StartRun};
use kura_service::authz::{self, Caller};
use kura_service::model::{RegistrationOutcome, RunCounts, RunReport, RunStatus};
use kura_service::ops::runs;
use kura_service::rfc3339;

use super::runs::run_view;
use super::types::{AgentWhoAmI, RegisterAgentRequest, RegisteredAgent};
use super::{ApiJson, parse_time};
use crate::app::AppState;
use crate::auth::{Agent, RequestId};
use crate::error::ApiError;

/// Exchanges a registration token for a machine and its credential (shown once).
#[utoipa::path(post, path = "/api/v1/agents/register", tag = "agents",
    request_body = RegisterAgentRequest,
    responses((status = 201, body = RegisteredAgent)))]
pub(super) async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(request): ApiJson<RegisterAgentRequest>,
) -> Result<(StatusCode, Json<RegisteredAgent>), ApiError> {
    // The private-gateway check uses the socket peer: agents do not come through proxies.
    let caller = Caller {
        source: Some(peer.ip().to_canonical()),
        request_id,
    };
    let (outcome, registered) =
        authz::register_machine(&state.service, &caller, &request.token, &request.name).await?;
    let label = match &outcome {
        RegistrationOutcome::Registered { .. } => "registered",
        RegistrationOutcome::UnknownToken => "unknown_token",
        RegistrationOutcome::TokenExpired => "token_expired",
        RegistrationOutcome::TokenUsed => "token_used",
        RegistrationOutcome::MachineLimitReached { .. } => "machine_limit",
        RegistrationOutcome::TenantNotActive(_) => "tenant_not_active",
        RegistrationOutcome::PeerOutsideAgentNetworks => "outside_agent_networks",
    };
    metrics::counter!("kura_agent_registrations_total", "outcome" => label).increment(1);
    let Some(registered) = registered else {
        return Err(authz::registration_refusal(&outcome, caller.source).into());
    };
    tracing::info!(tenant_id = %registered.tenant_id, machine_id = %registered.machine_id, peer = %peer.ip(), "agent registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisteredAgent {
            machine_id: registered.machine_id.to_string(),
            tenant_id: registered.tenant_id.to_string(),
            credential: registered.credential,
        }),
    ))
}

/// Who the credential belongs to: lets an agent check its registration.
#[utoipa::path(get, path = "/api/v1/agent/whoami", tag = "agents",
    responses((status = 200, body = AgentWhoAmI)))]
pub(super) async fn whoami(agent: Agent) -> Json<AgentWhoAmI> {
    Json(AgentWhoAmI {
        tenant_id: agent.scope.tenant_id().to_string(),
        machine_id: agent.machine_id.to_string(),
    })
}

/// The protection plans assigned to this machine, with the tenant's time zone and, per
/// plan, the slot that is due and the next one (the agent daemon runs them on schedule)
/// and a restore drill when one is due; and the restore jobs waiting for it.
#[utoipa::path(get, path = "/api/v1/agent/plans", tag = "agents",
    responses((status = 200, body = kura_api::agent::AgentPlans)))]
pub(super) async fn plans(
    State(state): State<AppState>,
    agent: Agent,
) -> Result<Json<kura_api::agent::AgentPlans>, ApiError> {
    let (time_zone, plans) = runs::for_agent(&state.service, &agent).await?;
    let restores = kura_service::ops::restores::for_agent(&state.service, &agent).await?;
    Ok(Json(kura_api::agent::AgentPlans {
        time_zone,
        restores: restores.into_iter().map(super::restores::agent_restore).collect(),
        plans: plans
            .into_iter()
            .map(|scheduled| {
                let plan = scheduled.plan;
                kura_api::agent::AgentPlan {
                    id: plan.id.as_str().to_owned(),
                    name: plan.spec.name,
                    kind: plan.spec.kind.as_str().to_owned(),
                    sources: plan.spec.sources,
                    excludes: plan.spec.excludes,
                    schedule: plan.spec.schedule,
                    bandwidth_limit: plan.spec.bandwidth_limit.map(|l| l.0),
                    pre_hook: plan.spec.pre_hook,
                    post_hook: plan.spec.post_hook,
                    enabled: plan.spec.enabled,
                    due: scheduled.due_ms.map(rfc3339),
                    next_run: scheduled.next_ms.map(rfc3339),
                    drill: scheduled.drill,
                }
            })
            .collect(),
    }))
}

/// Starts a run of one of this machine's plans for a due slot, or records the slot as
/// skipped (the plan's previous run still going). A missed slot is run late.
#[utoipa::path(post, path = "/api/v1/agent/runs", tag = "agents",
    request_body = StartRun,
    responses((status = 201, body = RunView)))]
pub(super) async fn start_run(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(request): ApiJson<StartRun>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let scheduled = parse_time("scheduled", Some(&request.scheduled))?.unwrap_or_default();
    let run = runs::start(
        &state.service,
        &agent,
        &request.plan_id,
        scheduled,
        request.skipped,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(run_view(run))))
}

/// Reports on one of this machine's runs: progress while running, then its outcome.
#[utoipa::path(patch, path = "/api/v1/agent/runs/{id}", tag = "agents",
    request_body = ReportRun,
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, body = RunView)))]
pub(super) async fn report_run(
    State(state): State<AppState>,
    agent: Agent,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReportRun>,
) -> Result<Json<RunView>, ApiError> {
    let status = RunStatus::parse(&request.status).ok_or_else(|| {
        ApiError::invalid(format!(
            "status: {:?} is not running, succeeded, partial or failed",
            request.status
        ))
    })?;
    let report = RunReport {
        status,
        counts: RunCounts {
            files: request.files,
            bytes_read: request.bytes_read,
            bytes_added: request.bytes_added,
        },
        snapshot_id: request.snapshot_id,
        error: request.error,
    };
    let run = runs::report(&state.service, &agent, &id, report).await?;
    Ok(Json(run_view(run)))
}
