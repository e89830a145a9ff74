//! Contracts from the console: `/tenants/new` creates a tenant (its first admin's
//! one-time password and a registration token shown once), `/tenants/{id}/contract`
//! changes one (only the fields that differ are sent, so an unchanged immutability period
//! never waits for a second operator-admin). The same operations as
//! `POST /api/v1/operator/tenants` and `PATCH /api/v1/operator/tenants/{id}`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::ServiceError;
use kura_service::model::TenantRecord;
use kura_service::ops::approvals::Gated;
use kura_service::ops::tenants::{
    self, CreateTenantRequest, CreatedTenant, DEFAULT_TIME_ZONE, UpdateTenantRequest,
};
use serde::Deserialize;

use super::Desk;
use crate::app::AppState;
use crate::auth::CallerInfo;
use crate::config::{exact_size, parse_size};
use crate::portal::account::{Outcome, status_after};
use crate::web::render;

/// The contract form as typed (create and change share it).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ContractForm {
    /// Only when creating.
    #[serde(default)]
    pub service_code: String,
    #[serde(default)]
    pub name: String,
    /// A size such as `500 GiB` or `2TB`.
    #[serde(default)]
    pub quota: String,
    #[serde(default)]
    pub max_machines: String,
    #[serde(default)]
    pub region: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    pub encryption_required: Option<String>,
    #[serde(default)]
    pub immutable_days: String,
    /// CIDRs separated by commas, spaces or lines; empty means anywhere.
    #[serde(default)]
    pub agent_networks: String,
    #[serde(default)]
    pub time_zone: String,
}

/// A contract read from the form.
struct Contract {
    name: String,
    quota_bytes: u64,
    max_machines: u32,
    region: String,
    encryption_required: bool,
    immutable_days: u32,
    agent_networks: Vec<String>,
    time_zone: String,
}

impl ContractForm {
    /// The form of a new tenant: the service's defaults.
    fn blank(default_region: &str) -> ContractForm {
        ContractForm {
            quota: "1 TiB".to_owned(),
            max_machines: "10".to_owned(),
            region: default_region.to_owned(),
            immutable_days: "0".to_owned(),
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            ..ContractForm::default()
        }
    }

    /// The form showing a tenant's contract as it is.
    pub(super) fn of(tenant: &TenantRecord) -> ContractForm {
        ContractForm {
            service_code: tenant.service_code.clone(),
            name: tenant.name.clone(),
            quota: exact_size(tenant.quota_bytes),
            max_machines: tenant.max_machines.to_string(),
            region: tenant.region.clone(),
            encryption_required: tenant.encryption_required.then(|| "on".to_owned()),
            immutable_days: tenant.immutable_days.to_string(),
            agent_networks: tenant
                .agent_networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            time_zone: tenant.time_zone.clone(),
        }
    }

    pub(super) fn encryption_ticked(&self) -> bool {
        self.encryption_required.is_some()
    }

    /// Reads the typed values; the service checks the rest (ranges, CIDRs, zone).
    fn read(&self, d: &Desk) -> Result<Contract, ServiceError> {
        let number = |text: &str, label: &str| {
            text.trim().parse::<u32>().map_err(|_| {
                ServiceError::invalid(d.tr.t1("console-contract-not-a-number", "field", d.tr.t(label)))
            })
        };
        let quota_bytes = parse_size(&self.quota).map_err(|_| {
            ServiceError::invalid(d.tr.t1("console-contract-quota-invalid", "text", self.quota.trim()))
        })?;
        Ok(Contract {
            name: self.name.trim().to_owned(),
            quota_bytes,
            max_machines: number(&self.max_machines, "console-max-machines")?,
            region: self.region.trim().to_owned(),
            encryption_required: self.encryption_ticked(),
            immutable_days: number(&self.immutable_days, "console-immutable-days")?,
            agent_networks: self
                .agent_networks
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|cidr| !cidr.is_empty())
                .map(str::to_owned)
                .collect(),
            time_zone: self.time_zone.trim().to_owned(),
        })
    }
}

#[derive(Template)]
#[template(path = "console/tenant_new.html")]
struct NewTenantPage {
    d: Desk,
    form: ContractForm,
    outcome: Option<Outcome>,
    /// What the creation answered: shown once.
    created: Option<CreatedTenant>,
}

/// `GET /tenants/new`.
pub(super) async fn new_page(State(state): State<AppState>, d: Desk) -> Response {
    let form = ContractForm::blank(&state.service.settings.default_region);
    render(
        StatusCode::OK,
        &NewTenantPage {
            d,
            form,
            outcome: None,
            created: None,
        },
    )
}

/// `POST /tenants`: creates the tenant and shows its first credentials once.
pub(super) async fn create(
    State(state): State<AppState>,
    d: Desk,
    Form(form): Form<ContractForm>,
) -> Response {
    let created = async {
        let contract = form.read(&d)?;
        let request = CreateTenantRequest {
            service_code: form.service_code.trim().to_owned(),
            name: contract.name,
            quota_bytes: contract.quota_bytes,
            max_machines: contract.max_machines,
            region: Some(contract.region).filter(|region| !region.is_empty()),
            encryption_required: contract.encryption_required,
            immutable_days: contract.immutable_days,
            agent_networks: contract.agent_networks,
            time_zone: Some(contract.time_zone).filter(|zone| !zone.is_empty()),
        };
        tenants::create(&state.service, &d.operator, request).await
    };
    let (outcome, created) = match created.await {
        Ok(created) => (None, Some(created)),
        Err(err) => (Some(Outcome::failed(&d.tr, &err)), None),
    };
    let status = status_after(&outcome, StatusCode::CREATED);
    render(
        status,
        &NewTenantPage {
            d,
            form,
            outcome,
            created,
        },
    )
}

/// `POST /tenants/{id}/contract`: sends what differs from the contract in force.
pub(super) async fn update(
    State(state): State<AppState>,
    CallerInfo(caller): CallerInfo,
    d: Desk,
    Path(id): Path<String>,
    Form(form): Form<ContractForm>,
) -> Response {
    let changed = async {
        let (scope, tenant) = tenants::contract(&state.service, &d.operator, &id).await?;
        let contract = form.read(&d)?;
        let networks_now: Vec<String> = tenant.agent_networks.iter().map(ToString::to_string).collect();
        let request = UpdateTenantRequest {
            name: changed(contract.name, &tenant.name),
            quota_bytes: changed(contract.quota_bytes, &tenant.quota_bytes),
            max_machines: changed(contract.max_machines, &tenant.max_machines),
            region: changed(contract.region, &tenant.region),
            encryption_required: changed(contract.encryption_required, &tenant.encryption_required),
            immutable_days: changed(contract.immutable_days, &tenant.immutable_days),
            agent_networks: changed(contract.agent_networks, &networks_now),
            time_zone: changed(contract.time_zone, &tenant.time_zone),
            language: None,
        };
        if serde_json::to_value(&request).is_ok_and(|value| value == serde_json::json!({})) {
            return Ok(Gated::Done(d.tr.t("console-contract-unchanged")));
        }
        let answer = tenants::update(&state.service, &d.operator, &caller, &scope, request).await?;
        Ok(answer.map(|t| d.tr.t1("console-contract-changed", "code", &t.service_code)))
    };
    match changed.await {
        Ok(answer) => super::tenant::after(&d, &id, answer),
        Err(err) => {
            let outcome = Outcome::failed(&d.tr, &err);
            super::tenant::show(
                &state,
                d,
                &id,
                super::tenant::default_form(),
                Some(form),
                Some(outcome),
            )
            .await
        }
    }
}

/// The new value when it differs from the one in force.
fn changed<T: PartialEq>(new: T, now: &T) -> Option<T> {
    (new != *now).then_some(new)
}
