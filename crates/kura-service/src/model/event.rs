//! Rows of the event log.

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub time_ms: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub request_id: String,
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub chain: String,
    pub seq: i64,
    pub tenant_id: Option<String>,
    pub event: NewEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The newest link of a chain, kept apart from the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: String,
    pub last_seq: i64,
    pub head_hash: String,
}
