//! How rows of the event log are chained ([`event_hash`]) and how the chains are checked
//! ([`verify`], behind `kura-server audit verify`).
//!
//! Each tenant has one chain and the operators one (the operator work log). A row's hash
//! covers its chain, sequence number, tenant and every field, plus the previous row's
//! hash; `event_chains` keeps each chain's last sequence number and hash. Editing a row
//! breaks its hash, deleting one leaves a gap or a broken link, and deleting the newest
//! rows no longer matches the head. Rows are only ever appended: no code path updates or
//! deletes them.

use std::collections::BTreeMap;

use crate::db::{Db, DbResult, events};
use crate::model::{EventRecord, NewEvent};

/// The "previous hash" of a chain's first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one row: BLAKE3 over length-prefixed fields, so no two different rows
/// encode alike.
pub fn event_hash(
    prev_hash: &str,
    chain: &str,
    seq: i64,
    tenant_id: Option<&str>,
    event: &NewEvent,
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"kura-event-v1");
    let seq = seq.to_string();
    let time = event.time_ms.to_string();
    for field in [
        prev_hash,
        chain,
        &seq,
        tenant_id.unwrap_or(""),
        &time,
        &event.actor,
        &event.source,
        &event.action,
        &event.target,
        &event.result,
        &event.request_id,
    ] {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// The first problem found in the event log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("chain {chain}: row {seq} was altered (its hash does not match its contents)")]
    Altered { chain: String, seq: i64 },
    #[error(
        "chain {chain}: row {seq} does not link to the row before it (a row before it was altered or deleted)"
    )]
    Unlinked { chain: String, seq: i64 },
    #[error("chain {chain}: row {seq} is missing (rows were deleted)")]
    Missing { chain: String, seq: i64 },
    #[error("chain {chain}: rows after {seq} are missing (the newest rows were deleted)")]
    Truncated { chain: String, seq: i64 },
    #[error("chain {chain}: rows exist but the chain has no head record")]
    NoHead { chain: String },
}

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedLog {
    pub chains: usize,
    pub events: usize,
}

/// Checks every chain from its first row to its head; names the first broken row.
pub async fn verify(db: &Db) -> DbResult<Result<VerifiedLog, ChainBreak>> {
    let events = events::all(db).await?;
    let heads: BTreeMap<String, (i64, String)> = events::heads(db)
        .await?
        .into_iter()
        .map(|head| (head.chain, (head.last_seq, head.head_hash)))
        .collect();
    let mut by_chain: BTreeMap<&str, Vec<&EventRecord>> = BTreeMap::new();
    for event in &events {
        by_chain.entry(&event.chain).or_default().push(event);
    }
    for chain in heads.keys() {
        by_chain.entry(chain).or_default();
    }
    for (chain, rows) in &by_chain {
        if let Err(broken) = verify_chain(chain, rows, heads.get(*chain)) {
            return Ok(Err(broken));
        }
    }
    Ok(Ok(VerifiedLog {
        chains: by_chain.len(),
        events: events.len(),
    }))
}

fn verify_chain(chain: &str, rows: &[&EventRecord], head: Option<&(i64, String)>) -> Result<(), ChainBreak> {
    let Some((last_seq, head_hash)) = head else {
        return Err(ChainBreak::NoHead {
            chain: chain.to_owned(),
        });
    };
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    for row in rows {
        let broken = |make: fn(String, i64) -> ChainBreak, seq| Err(make(chain.to_owned(), seq));
        if row.seq != expected_seq {
            return broken(|chain, seq| ChainBreak::Missing { chain, seq }, expected_seq);
        }
        if event_hash(
            &row.prev_hash,
            chain,
            row.seq,
            row.tenant_id.as_deref(),
            &row.event,
        ) != row.hash
        {
            return broken(|chain, seq| ChainBreak::Altered { chain, seq }, row.seq);
        }
        if row.prev_hash != prev_hash {
            return broken(|chain, seq| ChainBreak::Unlinked { chain, seq }, row.seq);
        }
        prev_hash.clone_from(&row.hash);
        expected_seq += 1;
    }
    if expected_seq - 1 != *last_seq || prev_hash != *head_hash {
        return Err(ChainBreak::Truncated {
            chain: chain.to_owned(),
            seq: expected_seq - 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str) -> NewEvent {
        NewEvent {
            time_ms: 1,
            actor: actor.to_owned(),
            source: "127.0.0.1".to_owned(),
            action: "login".to_owned(),
            target: "alice".to_owned(),
            result: "ok".to_owned(),
            request_id: "r1".to_owned(),
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = event_hash(GENESIS_HASH, "c", 1, None, &event("alice"));
        assert_ne!(base, event_hash(GENESIS_HASH, "c", 1, None, &event("alicf")));
        assert_ne!(base, event_hash(GENESIS_HASH, "c", 2, None, &event("alice")));
        assert_ne!(base, event_hash(&base, "c", 1, None, &event("alice")));
        // Field boundaries are part of the encoding.
        let mut shifted = event("alic");
        shifted.source = "e127.0.0.1".to_owned();
        assert_ne!(base, event_hash(GENESIS_HASH, "c", 1, None, &shifted));
    }
}
