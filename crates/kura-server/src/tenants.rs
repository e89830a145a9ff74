//! Tenant contracts: validating what an operator asks for, creating a tenant with its
//! first admin and registration token, and issuing further registration tokens. Used by
//! the operator API and by quickstart, so both follow the same rules.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::api::types::{
    CreateTenantRequest, CreatedTenant, RegistrationTokenView, TenantView, UpdateTenantRequest,
};
use crate::app::AppState;
use crate::auth::OperatorPrincipal;
use crate::db::{NewTenant, NewTenantUser, ServiceDb, TenantRole, TenantUpdate};
use crate::error::ApiError;
use crate::secrets::{TokenKind, hash_password, new_password, new_token, token_hash};
use crate::tenancy::{TenantId, TenantScope};

/// Where a tenant's times are shown unless it chooses otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Tokyo";

/// Checks a service code: 3–32 characters of `A-Z`, `0-9` and `-`, not starting with `-`.
pub fn validate_service_code(code: &str) -> Result<(), ApiError> {
    let valid = (3..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !code.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid service code {code:?}: use 3 to 32 characters A-Z, 0-9 and '-', starting with a letter or digit (e.g. ACME-0001)"
        )))
    }
}

fn validate_label(what: &str, value: &str, max_len: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(format!("{what} must not be empty")));
    }
    if value.chars().count() > max_len {
        return Err(ApiError::invalid(format!(
            "{what} is longer than {max_len} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Storage quotas are kept as signed 64-bit numbers by both databases.
fn validate_quota(quota_bytes: u64) -> Result<(), ApiError> {
    if quota_bytes == 0 || i64::try_from(quota_bytes).is_err() {
        return Err(ApiError::invalid("quota_bytes must be between 1 and 2^63-1"));
    }
    Ok(())
}

fn validate_time_zone(zone: &str) -> Result<(), ApiError> {
    jiff::tz::TimeZone::get(zone).map(|_| ()).map_err(|_| {
        ApiError::invalid(format!(
            "unknown time zone {zone:?}: use an IANA name such as Asia/Tokyo"
        ))
    })
}

/// Parses a list of networks (`what` names them in errors); a bare address means that
/// one host.
pub fn parse_networks(what: &str, texts: &[String]) -> Result<Vec<IpNet>, ApiError> {
    texts
        .iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "invalid {what} {text:?}: use CIDR notation such as 192.0.2.0/24"
                    ))
                })
        })
        .collect()
}

/// Creates a tenant, its first admin (random password, shown once) and a first
/// registration token.
pub async fn create_tenant(
    state: &AppState,
    operator: &OperatorPrincipal,
    request: CreateTenantRequest,
) -> Result<CreatedTenant, ApiError> {
    validate_service_code(&request.service_code)?;
    validate_label("name", &request.name, 200)?;
    validate_quota(request.quota_bytes)?;
    let region = request
        .region
        .unwrap_or_else(|| state.config.default_region.clone());
    validate_label("region", &region, 64)?;
    let time_zone = request.time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned());
    validate_time_zone(&time_zone)?;
    let agent_networks = parse_networks("agent network", &request.agent_networks)?;

    let admin_login = format!("{}-admin", request.service_code.to_ascii_lowercase());
    let admin_password = new_password();
    let password_for_hashing = admin_password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password_for_hashing))
        .await
        .map_err(|err| ApiError::internal("password hashing task failed", &err))?;

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
    let record = state
        .db
        .create_tenant(operator, &tenant, &admin, now_ms())
        .await?;
    let scope = TenantScope::for_operator(operator, record.id.clone());
    let token =
        issue_registration_token(state.db.as_ref(), &scope, state.config.registration_token_ttl).await?;
    tracing::info!(
        tenant_id = %record.id,
        service_code = %record.service_code,
        operator = operator.token_name(),
        "tenant created"
    );
    Ok(CreatedTenant {
        tenant_id: record.id.to_string(),
        service_code: record.service_code.clone(),
        admin_login,
        admin_password,
        registration_token: token.registration_token,
        registration_token_expires: token.expires,
        tenant: TenantView::from(&record),
    })
}

/// Validates a contract change into a database update.
pub fn tenant_update(request: UpdateTenantRequest) -> Result<TenantUpdate, ApiError> {
    if let Some(name) = &request.name {
        validate_label("name", name, 200)?;
    }
    if let Some(region) = &request.region {
        validate_label("region", region, 64)?;
    }
    if let Some(quota) = request.quota_bytes {
        validate_quota(quota)?;
    }
    if let Some(zone) = &request.time_zone {
        validate_time_zone(zone)?;
    }
    Ok(TenantUpdate {
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
    })
}

/// A new one-time registration token for the scoped tenant, valid for `ttl`.
pub async fn issue_registration_token(
    db: &dyn ServiceDb,
    scope: &TenantScope,
    ttl: Duration,
) -> Result<RegistrationTokenView, ApiError> {
    let token = new_token(TokenKind::Registration);
    let now = now_ms();
    let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    db.insert_registration_token(scope, &token_hash(&token), now, expires)
        .await?;
    Ok(RegistrationTokenView {
        registration_token: token,
        expires: crate::api::types::rfc3339(expires),
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
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
            assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
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
    fn time_zones_are_checked() {
        assert!(validate_time_zone("Asia/Tokyo").is_ok());
        assert!(validate_time_zone("Mars/Olympus").is_err());
    }
}
