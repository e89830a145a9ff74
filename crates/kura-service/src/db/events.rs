//! `events` and `event_chains`: the append-only event log, one hash chain per tenant and
//! one for operators (see `audit`).

use super::{DbResult, Query, Target, Tx};
use crate::audit::{GENESIS_HASH, event_hash};
use crate::authz::TenantKey;
use crate::model::{ChainHead, EventRecord, NewEvent};

/// The name of the operator work log's chain; a tenant's chain is named by its id.
pub const OPERATOR_CHAIN: &str = "operators";

/// Which chain an event joins. Appending needs no principal (recording is not reading),
/// but a tenant's chain is still named by a scope.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a> {
    tenant_id: Option<&'a str>,
}

impl<'a> Chain<'a> {
    /// The tenant's own log, which its admins and auditors export.
    pub fn tenant(scope: &'a impl TenantKey) -> Self {
        Chain {
            tenant_id: Some(scope.tenant_id().as_str()),
        }
    }

    /// The operator work log, which also records service-wide events such as sign-in
    /// attempts for unknown login IDs.
    pub fn operators() -> Self {
        Chain { tenant_id: None }
    }

    /// The chain's name: the tenant's id, or [`OPERATOR_CHAIN`].
    pub fn name(&self) -> &'a str {
        self.tenant_id.unwrap_or(OPERATOR_CHAIN)
    }
}

/// The columns of `events` in the order of [`EventRow`].
macro_rules! event_columns {
    () => {
        "chain, seq, tenant_id, time_ms, actor, source, action, target, result, request_id, prev_hash, hash"
    };
}

#[derive(sqlx::FromRow)]
struct EventRow {
    chain: String,
    seq: i64,
    tenant_id: Option<String>,
    time_ms: i64,
    actor: String,
    source: String,
    action: String,
    target: String,
    result: String,
    request_id: String,
    prev_hash: String,
    hash: String,
}

impl EventRow {
    fn into_record(self) -> EventRecord {
        EventRecord {
            chain: self.chain,
            seq: self.seq,
            tenant_id: self.tenant_id,
            event: NewEvent {
                time_ms: self.time_ms,
                actor: self.actor,
                source: self.source,
                action: self.action,
                target: self.target,
                result: self.result,
                request_id: self.request_id,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Appends an event to a chain, linking it to the chain's last one, inside the
/// operation's transaction: the event is committed with the change it records, or not
/// at all. Append last in a transaction: the chain's head row stays locked until commit.
pub async fn append(tx: &mut Tx, chain: Chain<'_>, event: &NewEvent) -> DbResult<()> {
    let name = chain.name();
    // Writing the chain's head row first serialises appends to one chain (a row lock in
    // PostgreSQL, the write lock in SQLite).
    Query::service(
        "INSERT INTO event_chains (chain, last_seq, head_hash) VALUES ($1, 0, $2) \
         ON CONFLICT (chain) DO NOTHING",
    )
    .bind(name)
    .bind(GENESIS_HASH)
    .execute(&mut *tx)
    .await?;
    let (seq, prev_hash): (i64, String) = Query::service(
        "UPDATE event_chains SET last_seq = last_seq + 1 WHERE chain = $1 RETURNING last_seq, head_hash",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let hash = event_hash(&prev_hash, name, seq, chain.tenant_id, event);
    Query::service(concat!(
        "INSERT INTO events (",
        event_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(name)
    .bind(seq)
    .bind(chain.tenant_id)
    .bind(event.time_ms)
    .bind(&event.actor)
    .bind(&event.source)
    .bind(&event.action)
    .bind(&event.target)
    .bind(&event.result)
    .bind(&event.request_id)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    Query::service("UPDATE event_chains SET head_hash = $2 WHERE chain = $1")
        .bind(name)
        .bind(&hash)
        .execute(tx)
        .await?;
    Ok(())
}

/// Which of a chain's events to read: `from_ms <= time < to_ms`, and when given, one
/// action (its wire name) and one actor (exactly as recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    pub action: Option<String>,
    pub actor: Option<String>,
}

impl EventFilter {
    /// The whole log.
    pub fn everything() -> Self {
        EventFilter {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            action: None,
            actor: None,
        }
    }
}

/// The `WHERE` of a filtered read; `$1` is the chain. `COALESCE` makes an absent
/// action or actor match every row in one statement both engines plan alike.
macro_rules! filtered {
    () => {
        " FROM events WHERE chain = $1 AND time_ms >= $2 AND time_ms < $3 \
         AND action = COALESCE($4, action) AND actor = COALESCE($5, actor)"
    };
}

/// The chain's events the filter selects, oldest first.
pub async fn list<'c>(
    on: impl Target<'c>,
    chain: Chain<'_>,
    filter: &EventFilter,
) -> DbResult<Vec<EventRecord>> {
    let rows: Vec<EventRow> =
        Query::service(concat!("SELECT ", event_columns!(), filtered!(), " ORDER BY seq"))
            .bind(chain.name())
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .bind(filter.action.as_deref())
            .bind(filter.actor.as_deref())
            .fetch_all(on)
            .await?;
    Ok(rows.into_iter().map(EventRow::into_record).collect())
}

/// Up to `limit` of the events the filter selects, newest first, with sequence numbers
/// below `before` when given (the next page starts below the last one shown).
pub async fn page<'c>(
    on: impl Target<'c>,
    chain: Chain<'_>,
    filter: &EventFilter,
    before: Option<i64>,
    limit: u32,
) -> DbResult<Vec<EventRecord>> {
    let rows: Vec<EventRow> = Query::service(concat!(
        "SELECT ",
        event_columns!(),
        filtered!(),
        " AND seq < $6 ORDER BY seq DESC LIMIT $7"
    ))
    .bind(chain.name())
    .bind(filter.from_ms)
    .bind(filter.to_ms)
    .bind(filter.action.as_deref())
    .bind(filter.actor.as_deref())
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(on)
    .await?;
    Ok(rows.into_iter().map(EventRow::into_record).collect())
}

/// Every event of every chain, by chain and sequence number, for `audit verify`.
pub async fn all<'c>(on: impl Target<'c>) -> DbResult<Vec<EventRecord>> {
    let rows: Vec<EventRow> = Query::service(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events ORDER BY chain, seq"
    ))
    .fetch_all(on)
    .await?;
    Ok(rows.into_iter().map(EventRow::into_record).collect())
}

/// The head of every chain.
pub async fn heads<'c>(on: impl Target<'c>) -> DbResult<Vec<ChainHead>> {
    let rows: Vec<(String, i64, String)> =
        Query::service("SELECT chain, last_seq, head_hash FROM event_chains ORDER BY chain")
            .fetch_all(on)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(chain, last_seq, head_hash)| ChainHead {
            chain,
            last_seq,
            head_hash,
        })
        .collect())
}
