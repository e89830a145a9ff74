//! Reading and exporting a tenant's event log; every export is itself recorded.

use super::record;
use crate::audit::Action;
use crate::authz::{Permission, UserPrincipal};
use crate::db::events;
use crate::model::EventRecord;
use crate::{Service, ServiceResult};

/// The tenant's events with `from_ms <= time < to_ms`, oldest first, recorded as an
/// export in `format` (`json` or `csv`).
pub async fn export(
    svc: &Service,
    user: &UserPrincipal,
    from_ms: i64,
    to_ms: i64,
    format: &str,
) -> ServiceResult<Vec<EventRecord>> {
    let records = events::list(&svc.db, &user.scope, from_ms, to_ms).await?;
    record(
        svc,
        &user.actor,
        &user.scope,
        Action::EventsExport,
        format,
        &format!("ok: {} rows", records.len()),
    )
    .await?;
    Ok(records)
}

/// The tenant's newest `limit` events, newest first (the dashboard's "recent events");
/// reading is not recorded, as it exports nothing.
pub async fn recent(svc: &Service, user: &UserPrincipal, limit: u32) -> ServiceResult<Vec<EventRecord>> {
    user.require(Permission::ReadEvents)?;
    Ok(events::recent(&svc.db, &user.scope, limit).await?)
}
