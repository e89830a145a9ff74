//! Support access with consent: a tenant admin grants operators a time-limited look at
//! the tenant's data (at most 72 hours) and can withdraw it. The operator's scope for
//! customer data comes from `authz::support_scope`, which checks the grant.

use super::record_in;
use crate::audit::Action;
use crate::authz::UserPrincipal;
use crate::db::tenants;
use crate::model::TenantRecord;
use crate::{Service, ServiceError, ServiceResult, rfc3339};

/// The longest grant.
pub const MAX_SUPPORT_HOURS: u32 = 72;

/// Until when support access is granted, if it is now.
pub fn active_until(tenant: &TenantRecord, now_ms: i64) -> Option<i64> {
    tenant.support_until_ms.filter(|until| now_ms < *until)
}

/// Grants support access for `hours` from now (replacing any earlier grant), or
/// withdraws it (`None`).
pub async fn set(svc: &Service, admin: &UserPrincipal, hours: Option<u32>) -> ServiceResult<TenantRecord> {
    if hours.is_some_and(|hours| !(1..=MAX_SUPPORT_HOURS).contains(&hours)) {
        return Err(ServiceError::invalid(format!(
            "hours must be between 1 and {MAX_SUPPORT_HOURS}"
        )));
    }
    let now = svc.now_ms();
    let until = hours.map(|hours| now.saturating_add(i64::from(hours) * 3_600_000));
    let mut tx = svc.db.begin().await?;
    let tenant = tenants::set_support_access(&mut tx, &admin.scope, until)
        .await?
        .ok_or_else(|| ServiceError::not_found("this tenant no longer exists"))?;
    let (action, result) = match until {
        Some(until) => (Action::SupportGrant, format!("ok: until {}", rfc3339(until))),
        None => (Action::SupportRevoke, "ok".to_owned()),
    };
    record_in(
        &mut tx,
        &admin.actor,
        now,
        &admin.scope,
        action,
        "support access",
        &result,
    )
    .await?;
    tx.commit().await?;
    Ok(tenant)
}
