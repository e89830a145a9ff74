//! A tenant's termination (解約), the purge of its data, and the signed deletion record
//! the purge leaves (削除証明).

use serde::{Deserialize, Serialize};

use super::TenantStatus;
use crate::ids::{DeletionId, TenantId};

/// What a purge found in storage before it deleted anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub objects: u64,
    pub bytes: u64,
    pub snapshots: u64,
}

/// A terminated tenant's termination, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationRecord {
    pub tenant_id: TenantId,
    /// What a withdrawn termination gives back.
    pub status_before: TenantStatus,
    pub terminated_ms: i64,
    pub terminated_by: String,
    pub purge_due_ms: i64,
    /// The purge job.
    pub job_id: String,
    pub purge_started_ms: Option<i64>,
    /// Counted when the purge started.
    pub counted: Option<PurgeCounts>,
    pub purged_ms: Option<i64>,
}

/// The name and version of the deletion record's format.
pub const DELETION_RECORD_FORMAT: &str = "kura-deletion-record/1";

/// What a purge deleted: the content that is signed. The signature covers the compact
/// JSON of this struct with its fields in this order (as `serde_json` writes it), so a
/// checker reads the record into this type and writes it again before checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletionRecord {
    /// `kura-deletion-record/1`.
    pub format: String,
    pub id: String,
    pub tenant_id: String,
    pub service_code: String,
    /// The contract's name when it was purged.
    pub tenant_name: String,
    /// The service that purged it (its public URL).
    pub service: String,
    /// RFC 3339, UTC.
    pub terminated_at: String,
    /// The operator who terminated the contract.
    pub terminated_by: String,
    pub purge_started_at: String,
    pub purged_at: String,
    /// Where the vault lived: a local directory or an S3 bucket and prefix.
    pub storage: String,
    pub objects_deleted: u64,
    pub bytes_deleted: u64,
    pub snapshots_deleted: u64,
    /// Accounts of the tenant's users erased with their personal data.
    pub users_deleted: u64,
    pub machines_deleted: u64,
    /// The purge job.
    pub job_id: String,
}

/// How a deletion record is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSignature {
    /// `ed25519`.
    pub algorithm: String,
    /// The signer's public key, base64 (32 bytes): compare it with the service's published
    /// key (`GET /api/v1/operator/deletion-key`, `kura-server deletion public-key`).
    pub public_key: String,
    /// Base64 (64 bytes).
    pub value: String,
}

/// A deletion record and its signature: what `GET /api/v1/operator/deletions/{id}`
/// answers and `kura-server deletion verify` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedDeletionRecord {
    pub record: DeletionRecord,
    pub signature: RecordSignature,
}

/// A deletion record in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionSummary {
    pub id: DeletionId,
    pub tenant_id: TenantId,
    pub service_code: String,
    pub created_ms: i64,
}
