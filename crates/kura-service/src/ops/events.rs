//! Reading and exporting the event logs: a tenant's (its users with `read-events`) and
//! the operator work log (operators with `read-work-log`, who may also check every
//! chain). Every export and check is itself recorded.

use super::operator_accounts::log_in;
use super::record;
use crate::audit::{self, Action, ChainBreak, VerifiedLog};
use crate::authz::{Caller, OperatorPrincipal, Permission, UserPrincipal};
pub use crate::db::events::EventFilter;
use crate::db::events::{self, Chain};
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
    let records = events::list(&svc.db, Chain::tenant(&user.scope), filter).await?;
    record(
        svc,
        &user.actor,
        &user.scope,
        Action::EventsExport,
        &export_target(filter, format),
        &format!("ok: {} rows", records.len()),
    )
    .await?;
    Ok(records)
}

/// The operator work log's events the filter selects, oldest first, recorded as an
/// export in `format` with the filter it used.
pub async fn export_work_log(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
    filter: &EventFilter,
    format: &str,
) -> ServiceResult<Vec<EventRecord>> {
    operator.require(Permission::ReadWorkLog)?;
    let records = events::list(&svc.db, Chain::operators(), filter).await?;
    let mut tx = svc.db.begin().await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        svc.now_ms(),
        Action::OperatorLogExport,
        &export_target(filter, format),
        &format!("ok: {} rows", records.len()),
    )
    .await?;
    tx.commit().await?;
    Ok(records)
}

/// `FORMAT action=… actor=…`: what an export recorded.
fn export_target(filter: &EventFilter, format: &str) -> String {
    let mut target = String::from(format);
    for (name, value) in [("action", &filter.action), ("actor", &filter.actor)] {
        if let Some(value) = value {
            target.push_str(&format!(" {name}={value}"));
        }
    }
    target
}

/// One page of the log, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Where the next (older) page starts, if there is one: pass it as `before`.
    pub next_before: Option<i64>,
}

/// Up to `limit` (at most [`MAX_PAGE`]) of the tenant's events the filter selects,
/// newest first, older than sequence number `before` when given. Reading is not
/// recorded, as it exports nothing: the downloads are.
pub async fn page(
    svc: &Service,
    user: &UserPrincipal,
    filter: &EventFilter,
    before: Option<i64>,
    limit: u32,
) -> ServiceResult<EventPage> {
    user.require(Permission::ReadEvents)?;
    page_of(svc, Chain::tenant(&user.scope), filter, before, limit).await
}

/// The same of the operator work log (its reading is in the log as the operator's call).
pub async fn work_log_page(
    svc: &Service,
    operator: &OperatorPrincipal,
    filter: &EventFilter,
    before: Option<i64>,
    limit: u32,
) -> ServiceResult<EventPage> {
    operator.require(Permission::ReadWorkLog)?;
    page_of(svc, Chain::operators(), filter, before, limit).await
}

async fn page_of(
    svc: &Service,
    chain: Chain<'_>,
    filter: &EventFilter,
    before: Option<i64>,
    limit: u32,
) -> ServiceResult<EventPage> {
    let limit = limit.clamp(1, MAX_PAGE);
    // One more than asked tells whether another page follows.
    let mut found = events::page(&svc.db, chain, filter, before, limit + 1).await?;
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

/// Checks every chain (every tenant's log and the work log) from its first row to its
/// head, as `kura-server audit verify` does offline; the check and its outcome are
/// recorded.
pub async fn check_chains(
    svc: &Service,
    operator: &OperatorPrincipal,
    caller: &Caller,
) -> ServiceResult<Result<VerifiedLog, ChainBreak>> {
    operator.require(Permission::ReadWorkLog)?;
    let outcome = audit::verify(&svc.db).await?;
    let result = match &outcome {
        Ok(log) => format!("intact: {} chains, {} events", log.chains, log.events),
        Err(broken) => format!("broken: {broken}"),
    };
    let mut tx = svc.db.begin().await?;
    log_in(
        &mut tx,
        &operator.actor(caller),
        svc.now_ms(),
        Action::OperatorLogVerify,
        "all chains",
        &result,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}
