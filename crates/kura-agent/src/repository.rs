//! [`Repository`]: the byte-level operations of a vault, whoever holds it. The agent holds
//! the key; a repository only ever sees sealed blobs, packs, manifests and ids.

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use kura_format::{BlobCodec, ChunkId, KeySlot, Manifest, SnapshotId, VaultConfig};
use kura_store::{
    GcOptions, GcReport, PackReceipt, RepairReport, SessionId, SnapshotRecord, Usage, Vault, VerifyReport,
    VerifyScope,
};

use crate::Result;

/// A vault as the agent sees it. Implemented in-process ([`LocalRepository`]) and over
/// HTTP, so every command works on both.
#[async_trait]
pub trait Repository: Send + Sync {
    /// How chunks are cut, named and encoded.
    fn config(&self) -> &VaultConfig;
    /// Where the vault is, for messages.
    fn location(&self) -> String;
    async fn key_slots(&self) -> Result<Vec<KeySlot>>;
    async fn add_key_slot(&self, slot: &KeySlot) -> Result<()>;
    async fn remove_key_slot(&self, id: &str) -> Result<()>;
    async fn open_session(&self, parent: Option<SnapshotId>) -> Result<SessionId>;
    /// Which of `ids` must be uploaded.
    async fn missing(&self, session: &SessionId, ids: &[ChunkId]) -> Result<Vec<ChunkId>>;
    async fn put_pack(&self, session: &SessionId, pack: Bytes) -> Result<PackReceipt>;
    async fn commit(&self, session: &SessionId, manifest: Vec<u8>, refs: Vec<u8>) -> Result<SnapshotId>;
    async fn abort_session(&self, session: &SessionId) -> Result<()>;
    /// Says the backup of `session` is alive, so the vault keeps what it uploaded.
    async fn heartbeat(&self, session: &SessionId) -> Result<()>;
    async fn snapshots(&self) -> Result<Vec<SnapshotRecord>>;
    /// `latest`, a full id or a unique prefix.
    async fn resolve(&self, spec: &str) -> Result<SnapshotId>;
    async fn manifest(&self, id: &SnapshotId) -> Result<Manifest>;
    async fn is_damaged(&self, id: &SnapshotId) -> Result<bool>;
    /// Sealed blobs of `ids`, in order.
    async fn read_blobs(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>>;
    /// Records that snapshot `id` is being restored, where the vault keeps an event log.
    async fn note_restore(&self, id: &SnapshotId) -> Result<()>;
    async fn forget(&self, ids: &[SnapshotId]) -> Result<()>;
    async fn gc(&self, options: GcOptions) -> Result<GcReport>;
    async fn verify(&self, scope: VerifyScope, opener: Option<&BlobCodec>) -> Result<VerifyReport>;
    /// Heals what the vault can heal from its own bytes ([`Vault::repair`]).
    async fn repair(&self, opener: Option<&BlobCodec>) -> Result<RepairReport>;
    async fn usage(&self) -> Result<Usage>;
    /// The vault itself, when it is in this process (a local vault): a backup then writes
    /// its packs straight into the vault's folder ([`Vault::new_pack_file`]).
    fn local_vault(&self) -> Option<&Vault> {
        None
    }
}

/// A vault in a local directory, used in-process.
pub struct LocalRepository {
    vault: Vault,
}

impl LocalRepository {
    /// Opens the vault at `dir`.
    pub async fn open(dir: &Path) -> Result<Self> {
        Ok(LocalRepository {
            vault: Vault::open_local(dir).await?,
        })
    }

    /// Creates a vault at `dir`.
    pub async fn create(dir: &Path, config: VaultConfig, slots: &[KeySlot]) -> Result<Self> {
        Ok(LocalRepository {
            vault: Vault::create_local(dir, config, slots).await?,
        })
    }
}

#[async_trait]
impl Repository for LocalRepository {
    fn config(&self) -> &VaultConfig {
        self.vault.config()
    }
    fn location(&self) -> String {
        self.vault.location().to_string()
    }
    async fn key_slots(&self) -> Result<Vec<KeySlot>> {
        Ok(self.vault.key_slots().await?)
    }
    async fn add_key_slot(&self, slot: &KeySlot) -> Result<()> {
        Ok(self.vault.add_key_slot(slot).await?)
    }
    async fn remove_key_slot(&self, id: &str) -> Result<()> {
        Ok(self.vault.remove_key_slot(id).await?)
    }
    async fn open_session(&self, parent: Option<SnapshotId>) -> Result<SessionId> {
        Ok(self.vault.open_session(parent).await?)
    }
    async fn missing(&self, session: &SessionId, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        Ok(self.vault.missing(session, ids).await?)
    }
    async fn put_pack(&self, session: &SessionId, pack: Bytes) -> Result<PackReceipt> {
        Ok(self.vault.put_pack(session, pack).await?)
    }
    async fn commit(&self, session: &SessionId, manifest: Vec<u8>, refs: Vec<u8>) -> Result<SnapshotId> {
        Ok(self.vault.commit(session, &manifest, &refs).await?)
    }
    async fn abort_session(&self, session: &SessionId) -> Result<()> {
        Ok(self.vault.abort_session(session).await?)
    }
    async fn heartbeat(&self, session: &SessionId) -> Result<()> {
        Ok(self.vault.heartbeat(session).await?)
    }
    async fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        Ok(self.vault.snapshots().await?)
    }
    async fn resolve(&self, spec: &str) -> Result<SnapshotId> {
        Ok(self.vault.resolve(spec).await?)
    }
    async fn manifest(&self, id: &SnapshotId) -> Result<Manifest> {
        Ok(self.vault.manifest(id).await?)
    }
    async fn is_damaged(&self, id: &SnapshotId) -> Result<bool> {
        Ok(self.vault.is_damaged(id).await?)
    }
    async fn read_blobs(&self, ids: &[ChunkId]) -> Result<Vec<Bytes>> {
        Ok(self.vault.read_blobs(ids).await?)
    }
    /// A local vault keeps no event log.
    async fn note_restore(&self, _id: &SnapshotId) -> Result<()> {
        Ok(())
    }
    async fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        Ok(self.vault.forget(ids).await?)
    }
    async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        Ok(self.vault.gc(options).await?)
    }
    async fn verify(&self, scope: VerifyScope, opener: Option<&BlobCodec>) -> Result<VerifyReport> {
        Ok(self.vault.verify(scope, opener).await?)
    }
    async fn repair(&self, opener: Option<&BlobCodec>) -> Result<RepairReport> {
        Ok(self.vault.repair(opener).await?)
    }
    async fn usage(&self) -> Result<Usage> {
        Ok(self.vault.usage().await?)
    }
    fn local_vault(&self) -> Option<&Vault> {
        Some(&self.vault)
    }
}
