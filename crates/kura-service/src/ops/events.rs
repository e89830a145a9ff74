//! Reading and exporting a tenant's event log; every export is itself recorded.

use super::record;
use crate::audit::Action;
use crate::authz::{Permission, UserPrincipal};
use crate::db::events;
pub use crate::db::events::EventFilter;
use crate::model::EventRecord;
use crate::{Service, ServiceResult};

/// Most events one page shows.
pub const MAX_PAGE: u32 = 500;

/// The tenant's events the filter selects, oldest first, recorded as an export in
/// `format` (`json` or `csv`) with the filter it used.
pub async fn export(
    svc: &Service,
    user: &UserPrincipal,
    filter: &EventFilter,
    format: &str,
) -> ServiceResult<Vec<EventRecord>> {
    user.require(Permission::ReadEvents)?;
    let records = events::list(&svc.db, &user.scope, filter).await?;
    let mut target = String::from(format);
    for (name, value) in [("action", &filter.action), ("actor", &filter.actor)] {
        if let Some(value) = value {
            target.push_str(&format!(" {name}={value}"));
        }
    }
    record(
        svc,
        &user.actor,
        &user.scope,
        Action::EventsExport,
        &target,
        &format!("ok: {} rows", records.len()),
    )
    .await?;
    Ok(records)
}

/// One page of the log, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Where the next (older) page starts, if there is one: pass it as `before`.
    pub next_before: Option<i64>,
}

/// Up to `limit` (at most [`MAX_PAGE`]) of the events the filter selects, newest first,
/// older than sequence number `before` when given. Reading is not recorded, as it
/// exports nothing: the downloads are.
pub async fn page(
    svc: &Service,
    user: &UserPrincipal,
    filter: &EventFilter,
    before: Option<i64>,
    limit: u32,
) -> ServiceResult<EventPage> {
    user.require(Permission::ReadEvents)?;
    let limit = limit.clamp(1, MAX_PAGE);
    // One more than asked tells whether another page follows.
    let mut found = events::page(&svc.db, &user.scope, filter, before, limit + 1).await?;
    let next_before = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|last| last.seq)
    } else {
        None
    };
    Ok(EventPage {
        events: found,
        next_before,
    })
}

/// The tenant's newest `limit` events, newest first (the dashboard's "recent events").
pub async fn recent(svc: &Service, user: &UserPrincipal, limit: u32) -> ServiceResult<Vec<EventRecord>> {
    Ok(page(svc, user, &EventFilter::everything(), None, limit)
        .await?
        .events)
}
