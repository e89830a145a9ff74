//! The vault protocol: what an agent sends to store and read snapshots of its tenant's
//! vault. Bulk bodies (id lists, packs, blobs, manifest + reference list) are binary
//! ([`crate::frames`]); everything else is JSON. Byte fields inside JSON are hex.

use serde::{Deserialize, Serialize};

/// Media type of binary bodies.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Most ids per `missing` request; the agent batches below it.
pub const MAX_IDS_PER_REQUEST: usize = 4096;

/// Most ids per `blobs` request: a blob is at most about 1 MiB, so an answer stays small
/// enough to hold in memory on both sides.
pub const MAX_BLOBS_PER_REQUEST: usize = 64;

/// Largest pack body the server accepts (packs aim at 16 MiB).
pub const MAX_PACK_BYTES: usize = 64 << 20;

/// Largest commit body (manifest and reference list): 32 bytes a referenced chunk, so
/// about eight million chunks — some 2 TiB of distinct file data — in one snapshot.
pub const MAX_COMMIT_BYTES: usize = 256 << 20;

/// `GET /api/v1/vault`: the vault's configuration (404 when the tenant has none yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VaultInfo {
    /// `VaultConfig` encoding, hex.
    pub config: String,
    /// Where the vault lives, for messages (server URL and vault name).
    pub location: String,
}

/// `POST /api/v1/vault`: create the tenant's vault (the agent made the key and slots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateVault {
    /// `VaultConfig` encoding, hex.
    pub config: String,
    /// `KeySlot` encodings, hex.
    pub key_slots: Vec<String>,
}

/// `GET /api/v1/vault/key-slots`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeySlots {
    /// `KeySlot` encodings, hex.
    pub slots: Vec<String>,
}

/// `POST /api/v1/vault/key-slots`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddKeySlot {
    /// `KeySlot` encoding, hex.
    pub slot: String,
}

/// `POST /api/v1/vault/sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenSession {
    /// The snapshot the backup starts from (hex id), whose chunks GC must keep meanwhile.
    pub parent: Option<String>,
}

/// Answer to [`OpenSession`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionOpened {
    pub session: String,
}

/// `PUT /api/v1/vault/sessions/{session}/packs`: what storing one pack did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackStored {
    /// Hex id of the pack.
    pub pack_id: String,
    pub blobs: u64,
    /// Chunks the vault did not hold before.
    pub new_chunks: u64,
    pub stored_bytes: u64,
}

/// `POST /api/v1/vault/sessions/{session}/commit` (body: frames manifest, reference list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Committed {
    pub snapshot_id: String,
}

/// One snapshot: `GET /api/v1/vault/snapshots` lists them, `GET
/// /api/v1/vault/snapshots/{spec}` (`latest`, an id or a unique prefix) returns one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotEntry {
    pub id: String,
    /// `Manifest` encoding, hex.
    pub manifest: String,
    /// Whether a verification found chunks of it missing or damaged.
    pub damaged: bool,
}

/// Answer to the snapshot list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotEntry>,
}

/// `POST /api/v1/vault/forget`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Forget {
    pub snapshots: Vec<String>,
}

/// `POST /api/v1/vault/gc`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunGc {
    pub max_unused: f64,
    pub dry_run: bool,
}

/// `POST /api/v1/vault/verify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunVerify {
    pub read_data: bool,
}
