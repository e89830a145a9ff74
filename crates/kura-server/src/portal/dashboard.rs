//! The dashboard (`/`): usage against the contract's quota, machines, warnings and the
//! newest events; and the contract page (`/contract`): what the tenant has agreed with
//! the provider, where its data lives and who is responsible for what.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::authz::Permission;
use kura_service::model::{EventRecord, MachineRecord};
use kura_service::ops::{events, tenants, vault};

use super::Viewer;
use crate::app::AppState;
use crate::web::render;

/// Storage use from which the dashboard warns.
const QUOTA_WARNING_PERCENT: u64 = 80;
/// Newest events on the dashboard.
const RECENT_EVENTS: u32 = 10;

/// Stored bytes against the quota.
pub struct Usage {
    pub stored: u64,
    pub quota: u64,
    /// 0–100 (more when over quota), for the bar.
    pub percent: u64,
}

impl Usage {
    pub fn warning(&self) -> bool {
        self.percent >= QUOTA_WARNING_PERCENT
    }

    /// The bar's width in the SVG (0–200).
    pub fn bar_width(&self) -> u64 {
        self.percent.min(100) * 2
    }
}

async fn usage(state: &AppState, viewer: &Viewer) -> Result<Usage, Response> {
    let stored = vault::find(&state.service, &viewer.user.scope)
        .await
        .map_err(|err| viewer.error_page(&err, "/"))?
        .map_or(0, |vault| vault.stored_bytes());
    let quota = viewer.tenant.quota_bytes;
    let percent = if quota == 0 {
        0
    } else {
        u64::try_from(u128::from(stored) * 100 / u128::from(quota)).unwrap_or(u64::MAX)
    };
    Ok(Usage {
        stored,
        quota,
        percent,
    })
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    v: Viewer,
    usage: Usage,
    machines: Vec<MachineRecord>,
    active_machines: u64,
    events: Vec<EventRecord>,
}

/// `GET /`.
pub(super) async fn page(State(state): State<AppState>, v: Viewer) -> Response {
    let usage = match usage(&state, &v).await {
        Ok(usage) => usage,
        Err(response) => return response,
    };
    let machines = match tenants::machines(&state.service, &v.user.scope).await {
        Ok(machines) => machines,
        Err(err) => return v.error_page(&err, "/"),
    };
    let events = if v.may(Permission::ReadEvents) {
        match events::recent(&state.service, &v.user, RECENT_EVENTS).await {
            Ok(events) => events,
            Err(err) => return v.error_page(&err, "/"),
        }
    } else {
        Vec::new()
    };
    let active_machines = machines.iter().filter(|m| m.revoked_ms.is_none()).count() as u64;
    render(
        StatusCode::OK,
        &DashboardPage {
            v,
            usage,
            machines,
            active_machines,
            events,
        },
    )
}

#[derive(Template)]
#[template(path = "portal/contract.html")]
struct ContractPage {
    v: Viewer,
    usage: Usage,
    active_machines: u64,
    agent_networks: String,
}

/// `GET /contract`.
pub(super) async fn contract(State(state): State<AppState>, v: Viewer) -> Response {
    let usage = match usage(&state, &v).await {
        Ok(usage) => usage,
        Err(response) => return response,
    };
    let active_machines = match tenants::machines(&state.service, &v.user.scope).await {
        Ok(machines) => machines.iter().filter(|m| m.revoked_ms.is_none()).count() as u64,
        Err(err) => return v.error_page(&err, "/"),
    };
    let agent_networks = v
        .tenant
        .agent_networks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    render(
        StatusCode::OK,
        &ContractPage {
            v,
            usage,
            active_machines,
            agent_networks,
        },
    )
}
