//! Tenant contracts: validating what an operator asks for, creating a tenant with its
//! first admin and registration token, changing and suspending contracts, registration
//! tokens and machines. Used by the operator API and by quickstart, so both follow the
//! same rules.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::approvals::{self, Authority, Gated, Held};
use super::validate_label;
use crate::authz::{Caller, ContractScope, OperatorPrincipal, TenantKey, TenantRole};
use crate::db::{machines, tenants, users};
use crate::ids::{MachineId, TenantId};
use crate::model::{
    ApprovalAction, Language, MachineRecord, NewTenant, NewTenantUser, TenantActivity, TenantRecord,
    TenantStatus, TenantUpdate, TenantUserRecord,
};
use crate::secrets::{TokenKind, hash_password, new_password, new_token, token_hash};
use crate::{Service, ServiceError, ServiceResult, duration_ms};

/// Where a tenant's times are shown unless it chooses otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Tokyo";
/// The most machines a contract may allow.
pub const MAX_MACHINES: u32 = 100_000;
/// The longest immutability period a contract may set (ten years).
pub const MAX_IMMUTABLE_DAYS: u32 = 3650;

/// `POST /api/v1/operator/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// `^[A-Z0-9][A-Z0-9-]{2,31}$`, unique.
    pub service_code: String,
    pub name: String,
    pub quota_bytes: u64,
    pub max_machines: u32,
    /// Defaults to the server's `default_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub encryption_required: bool,
    #[serde(default)]
    pub immutable_days: u32,
    /// CIDRs (or single addresses) agents must connect from; empty means anywhere.
    #[serde(default)]
    pub agent_networks: Vec<String>,
    /// IANA time zone; defaults to Asia/Tokyo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// `PATCH /api/v1/operator/tenants/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `ja` or `en`: the tenant's default language for pages and mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Checks a service code: 3–32 characters of `A-Z`, `0-9` and `-`, not starting with `-`.
pub fn validate_service_code(code: &str) -> ServiceResult<()> {
    let valid = (3..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !code.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "invalid service code {code:?}: use 3 to 32 characters A-Z, 0-9 and '-', starting with a letter or digit (e.g. ACME-0001)"
        )))
    }
}

/// Storage quotas are kept as signed 64-bit numbers by both databases.
fn validate_quota(quota_bytes: u64) -> ServiceResult<()> {
    if quota_bytes == 0 || i64::try_from(quota_bytes).is_err() {
        return Err(ServiceError::invalid("quota_bytes must be between 1 and 2^63-1"));
    }
    Ok(())
}

fn validate_limits(max_machines: Option<u32>, immutable_days: Option<u32>) -> ServiceResult<()> {
    if max_machines.is_some_and(|n| n > MAX_MACHINES) {
        return Err(ServiceError::invalid(format!(
            "max_machines must be at most {MAX_MACHINES}"
        )));
    }
    if immutable_days.is_some_and(|days| days > MAX_IMMUTABLE_DAYS) {
        return Err(ServiceError::invalid(format!(
            "immutable_days must be at most {MAX_IMMUTABLE_DAYS} (ten years)"
        )));
    }
    Ok(())
}

fn validate_time_zone(zone: &str) -> ServiceResult<()> {
    jiff::tz::TimeZone::get(zone).map(|_| ()).map_err(|_| {
        ServiceError::invalid(format!(
            "unknown time zone {zone:?}: use an IANA name such as Asia/Tokyo"
        ))
    })
}

/// Parses a list of networks (`what` names them in errors); a bare address means that
/// one host.
pub fn parse_networks(what: &str, texts: &[String]) -> ServiceResult<Vec<IpNet>> {
    texts
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ServiceError::invalid(format!(
                        "invalid {what} {text:?}: use CIDR notation such as 192.0.2.0/24"
                    ))
                })
        })
        .collect()
}

/// A new tenant with its first admin's password and a registration token, each shown once.
pub struct CreatedTenant {
    pub tenant: TenantRecord,
    pub admin_login: String,
    pub admin_password: String,
    pub registration: RegistrationToken,
}

/// A one-time agent registration token (shown once) and when it expires.
pub struct RegistrationToken {
    pub token: String,
    pub expires_ms: i64,
}

/// Creates a tenant, its first admin (random password, shown once) and a first
/// registration token, in one transaction.
pub async fn create(
    svc: &Service,
    operator: &OperatorPrincipal,
    request: CreateTenantRequest,
) -> ServiceResult<CreatedTenant> {
    validate_service_code(&request.service_code)?;
    validate_label("name", &request.name, 200)?;
    validate_quota(request.quota_bytes)?;
    validate_limits(Some(request.max_machines), Some(request.immutable_days))?;
    let region = request
        .region
        .unwrap_or_else(|| svc.settings.default_region.clone());
    validate_label("region", &region, 64)?;
    let time_zone = request.time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned());
    validate_time_zone(&time_zone)?;
    let agent_networks = parse_networks("agent network", &request.agent_networks)?;

    let admin_login = format!("{}-admin", request.service_code.to_ascii_lowercase());
    let admin_password = new_password();
    let password_for_hashing = admin_password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password_for_hashing))
        .await
        .map_err(|err| ServiceError::internal("password hashing task failed", &err))?;
    let tenant = NewTenant {
        id: TenantId::generate(),
        service_code: request.service_code,
        name: request.name,
        quota_bytes: request.quota_bytes,
        max_machines: request.max_machines,
        region,
        encryption_required: request.encryption_required,
        immutable_days: request.immutable_days,
        agent_networks,
        time_zone,
    };
    let admin = NewTenantUser {
        login: admin_login.clone(),
        password_hash,
        role: TenantRole::Admin,
        email: None,
    };
    let now = svc.now_ms();
    let mut tx = svc.db.begin().await?;
    let record = tenants::create(&mut tx, &tenant, &admin, now).await?;
    let scope = ContractScope::new(operator, record.id.clone());
    let registration = insert_registration_token(svc, &mut tx, &scope, now).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %record.id, service_code = %record.service_code, operator = operator.name(), "tenant created");
    Ok(CreatedTenant {
        tenant: record,
        admin_login,
        admin_password,
        registration,
    })
}

/// All tenants, by service code.
pub async fn list(svc: &Service, _operator: &OperatorPrincipal) -> ServiceResult<Vec<TenantRecord>> {
    Ok(tenants::list(&svc.db).await?)
}

/// Every tenant with its activity (storage used, machines, last backup), by service code.
pub async fn overview(
    svc: &Service,
    _operator: &OperatorPrincipal,
) -> ServiceResult<Vec<(TenantRecord, Option<TenantActivity>)>> {
    let tenants = tenants::list(&svc.db).await?;
    let mut activity = tenants::overview(&svc.db).await?;
    Ok(tenants
        .into_iter()
        .map(|tenant| {
            let found = activity
                .iter()
                .position(|row| row.tenant_id == tenant.id)
                .map(|at| activity.swap_remove(at));
            (tenant, found)
        })
        .collect())
}

/// The tenant with this service code, if any.
pub async fn by_service_code(
    svc: &Service,
    _operator: &OperatorPrincipal,
    service_code: &str,
) -> ServiceResult<Option<TenantRecord>> {
    Ok(tenants::by_service_code(&svc.db, service_code).await?)
}

/// The contract scope of the tenant with this id (as a URL gave it), and the tenant; a
/// malformed or unknown id is "not found".
pub async fn contract(
    svc: &Service,
    operator: &OperatorPrincipal,
    tenant_id: &str,
) -> ServiceResult<(ContractScope, TenantRecord)> {
    let not_found = || ServiceError::not_found(format!("no tenant with id {tenant_id:?}"));
    let scope = ContractScope::new(operator, TenantId::parse(tenant_id).ok_or_else(not_found)?);
    let tenant = tenants::get(&svc.db, &scope).await?.ok_or_else(not_found)?;
    Ok((scope, tenant))
}

/// The scoped tenant; a tenant deleted under a live credential is a clear "not found".
pub async fn current(svc: &Service, scope: &impl TenantKey) -> ServiceResult<TenantRecord> {
    tenants::get(&svc.db, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))
}

/// A tenant's contract, users and machines, as an operator sees them.
pub async fn detail(
    svc: &Service,
    scope: &ContractScope,
) -> ServiceResult<(Vec<TenantUserRecord>, Vec<MachineRecord>)> {
    Ok((
        users::list(&svc.db, scope).await?,
        machines::list(&svc.db, scope).await?,
    ))
}

/// Validates a contract change and applies it. A change that lowers the immutability
/// period (snapshots become deletable sooner) waits for a second operator-admin under the
/// two-person rule.
pub async fn update(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    scope: &ContractScope,
    request: UpdateTenantRequest,
) -> ServiceResult<Gated<TenantRecord>> {
    let authority = Authority {
        operator,
        caller,
        approval: None,
    };
    update_as(svc, &authority, scope, request).await
}

/// [`update`], asked for directly or carrying out an approved request.
pub(crate) async fn update_as(
    svc: &Service,
    authority: &Authority<'_>,
    scope: &ContractScope,
    request: UpdateTenantRequest,
) -> ServiceResult<Gated<TenantRecord>> {
    if let Some(name) = &request.name {
        validate_label("name", name, 200)?;
    }
    if let Some(region) = &request.region {
        validate_label("region", region, 64)?;
    }
    if let Some(quota) = request.quota_bytes {
        validate_quota(quota)?;
    }
    validate_limits(request.max_machines, request.immutable_days)?;
    if let Some(zone) = &request.time_zone {
        validate_time_zone(zone)?;
    }
    if let Some(days) = request.immutable_days {
        let now = svc.now_ms();
        let mut tx = svc.db.begin().await?;
        let tenant = tenants::lock(&mut tx, scope)
            .await?
            .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
        if days < tenant.immutable_days {
            let target = super::terminations::subject(&tenant);
            let held = Held {
                action: ApprovalAction::LowerImmutability,
                tenant_id: Some(&tenant.id),
                target: &target,
                params: &request,
                summary: format!(
                    "lower the immutability period of tenant {} from {} to {days} days",
                    tenant.service_code, tenant.immutable_days
                ),
                details: &[
                    ("code", tenant.service_code.clone()),
                    ("from", tenant.immutable_days.to_string()),
                    ("to", days.to_string()),
                ],
            };
            if let Some(waiting) = approvals::hold(svc, &mut tx, now, authority, held).await? {
                tx.commit().await?;
                return Ok(Gated::AwaitingApproval(Box::new(waiting)));
            }
        }
    }
    let update = TenantUpdate {
        name: request.name,
        quota_bytes: request.quota_bytes,
        max_machines: request.max_machines,
        region: request.region,
        encryption_required: request.encryption_required,
        immutable_days: request.immutable_days,
        admin_networks: None,
        totp_policy: None,
        agent_networks: request
            .agent_networks
            .as_deref()
            .map(|texts| parse_networks("agent network", texts))
            .transpose()?,
        time_zone: request.time_zone,
        language: request
            .language
            .as_deref()
            .map(|text| {
                Language::parse(text).ok_or_else(|| {
                    ServiceError::invalid(format!("language {text:?} is not offered: use \"ja\" or \"en\""))
                })
            })
            .transpose()?,
    };
    let quota_changed = update.quota_bytes.is_some();
    let tenant = tenants::update(&svc.db, scope, &update)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    // A larger quota may end a quota alert; a smaller one may raise one.
    if quota_changed {
        super::alerts::check_quota(svc, &crate::authz::service_scope(&tenant.id)).await?;
    }
    Ok(Gated::Done(tenant))
}

/// Suspends or resumes a tenant; a terminated tenant stays terminated.
pub async fn set_status(
    svc: &Service,
    scope: &ContractScope,
    status: TenantStatus,
) -> ServiceResult<TenantRecord> {
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::lock(&mut tx, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    if tenant.status == TenantStatus::Terminated {
        return Err(ServiceError::conflict(
            "this tenant has been terminated; its status cannot change",
        ));
    }
    let tenant = tenants::set_status(&mut tx, scope, status)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    tx.commit().await?;
    Ok(tenant)
}

pub(crate) async fn insert_registration_token(
    svc: &Service,
    tx: &mut crate::db::Tx,
    scope: &impl TenantKey,
    now: i64,
) -> ServiceResult<RegistrationToken> {
    let token = new_token(TokenKind::Registration);
    let expires_ms = now.saturating_add(duration_ms(svc.settings.registration_token_ttl));
    machines::insert_registration_token(tx, scope, &token_hash(&token), now, expires_ms).await?;
    Ok(RegistrationToken { token, expires_ms })
}

/// A new one-time registration token for an active tenant.
pub async fn issue_registration_token(
    svc: &Service,
    scope: &ContractScope,
    tenant: &TenantRecord,
) -> ServiceResult<RegistrationToken> {
    crate::authz::refuse_inactive_tenant(tenant.status)?;
    let mut tx = svc.db.begin().await?;
    let token = insert_registration_token(svc, &mut tx, scope, svc.now_ms()).await?;
    tx.commit().await?;
    Ok(token)
}

/// Whether `token` is an unused, unexpired registration token of the tenant.
pub async fn registration_token_usable(
    svc: &Service,
    scope: &ContractScope,
    token: &str,
) -> ServiceResult<bool> {
    Ok(machines::registration_token_usable(&svc.db, scope, &token_hash(token), svc.now_ms()).await?)
}

/// Revokes a machine's credential at once (e.g. a compromised host).
pub async fn revoke_machine(svc: &Service, scope: &ContractScope, machine_id: &str) -> ServiceResult<()> {
    let not_found =
        || ServiceError::not_found(format!("no active machine with id {machine_id:?} in this tenant"));
    let machine = MachineId::parse(machine_id).ok_or_else(not_found)?;
    let mut tx = svc.db.begin().await?;
    if !machines::revoke(&mut tx, scope, &machine, svc.now_ms()).await? {
        return Err(not_found());
    }
    tx.commit().await?;
    Ok(())
}

/// The tenant's machines, oldest first.
pub async fn machines(svc: &Service, scope: &impl TenantKey) -> ServiceResult<Vec<MachineRecord>> {
    Ok(machines::list(&svc.db, scope).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_follow_the_pattern() {
        for good in ["ACME-0001", "DEMO-0001", "A1B", "0-CUSTOMER"] {
            assert!(validate_service_code(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "AB",
            "acme-0001",
            "-ACME",
            "ACME_0001",
            "ACME 1",
            &"A".repeat(33),
        ] {
            let err = validate_service_code(bad).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Invalid);
            assert!(err.message.contains("invalid service code"), "{}", err.message);
        }
    }

    #[test]
    fn agent_networks_accept_cidrs_and_addresses() {
        let nets = parse_networks(
            "agent network",
            &["10.1.2.3/8".into(), "192.0.2.7".into(), "2001:db8::/32".into()],
        )
        .unwrap();
        let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let err = parse_networks("agent network", &["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.message.contains("invalid agent network"));
    }

    #[test]
    fn time_zones_and_limits_are_checked() {
        assert!(validate_time_zone("Asia/Tokyo").is_ok());
        assert!(validate_time_zone("Mars/Olympus").is_err());
        assert!(validate_limits(Some(MAX_MACHINES + 1), None).is_err());
        assert!(validate_limits(None, Some(MAX_IMMUTABLE_DAYS + 1)).is_err());
        assert!(validate_limits(Some(10), Some(30)).is_ok());
    }
}
