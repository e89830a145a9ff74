//! Where chunks go: deduplicated against the vault in batches, sealed, packed and
//! uploaded. Every id the snapshot uses is recorded for its reference list.

use std::collections::HashSet;
use std::mem;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kura_format::{BlobKind, ChunkId, PackWriter};
use kura_store::SessionId;

use crate::{OpenVault, Result};

/// A batch is checked against the vault when it holds this many chunks or bytes.
const BATCH_CHUNKS: usize = 256;
const BATCH_BYTES: usize = 32 << 20;

struct Pending {
    id: ChunkId,
    kind: BlobKind,
    data: Vec<u8>,
}

#[derive(Default)]
struct Batch {
    chunks: Vec<Pending>,
    bytes: usize,
}

/// Thread-safe destination of a backup's chunks.
pub(crate) struct ChunkSink {
    vault: OpenVault,
    session: SessionId,
    batch: Mutex<Batch>,
    packer: Mutex<PackWriter>,
    used: Mutex<HashSet<ChunkId>>,
    pub(crate) bytes_added: AtomicU64,
    pub(crate) chunks_added: AtomicU64,
}

impl ChunkSink {
    pub(crate) fn new(vault: OpenVault, session: SessionId) -> Self {
        ChunkSink {
            vault,
            session,
            batch: Mutex::new(Batch::default()),
            packer: Mutex::new(PackWriter::new()),
            used: Mutex::new(HashSet::new()),
            bytes_added: AtomicU64::new(0),
            chunks_added: AtomicU64::new(0),
        }
    }

    /// Takes a chunk of this snapshot; stores it unless the vault already has it.
    pub(crate) fn submit(&self, id: ChunkId, kind: BlobKind, data: Vec<u8>) -> Result<()> {
        if !self.used.lock().expect("used lock").insert(id) {
            return Ok(());
        }
        let full = {
            let mut batch = self.batch.lock().expect("batch lock");
            batch.bytes += data.len();
            batch.chunks.push(Pending { id, kind, data });
            (batch.chunks.len() >= BATCH_CHUNKS || batch.bytes >= BATCH_BYTES).then(|| mem::take(&mut *batch))
        };
        match full {
            Some(batch) => self.store(batch),
            None => Ok(()),
        }
    }

    /// Records ids the snapshot takes unchanged from its parent.
    pub(crate) fn reuse<'a>(&self, ids: impl Iterator<Item = &'a ChunkId>) {
        self.used.lock().expect("used lock").extend(ids);
    }

    fn store(&self, batch: Batch) -> Result<()> {
        let ids: Vec<ChunkId> = batch.chunks.iter().map(|p| p.id).collect();
        let missing: HashSet<ChunkId> = self
            .vault
            .handle
            .block_on(self.vault.repo.missing(&self.session, &ids))?
            .into_iter()
            .collect();
        for p in batch.chunks.into_iter().filter(|p| missing.contains(&p.id)) {
            let blob = self.vault.codec.seal(&p.id, &p.data)?;
            let full = {
                let mut packer = self.packer.lock().expect("packer lock");
                packer.add(p.id, p.kind, &blob, p.data.len() as u32);
                packer.is_full().then(|| mem::take(&mut *packer))
            };
            self.chunks_added.fetch_add(1, Ordering::Relaxed);
            if let Some(pack) = full {
                self.upload(pack)?;
            }
        }
        Ok(())
    }

    fn upload(&self, pack: PackWriter) -> Result<()> {
        let (_, bytes, _) = pack.finish();
        let receipt = self
            .vault
            .handle
            .block_on(self.vault.repo.put_pack(&self.session, Bytes::from(bytes)))?;
        self.bytes_added
            .fetch_add(receipt.stored_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Stores what is still batched or packed. Call once all submitters are done.
    pub(crate) fn flush(&self) -> Result<()> {
        let batch = mem::take(&mut *self.batch.lock().expect("batch lock"));
        self.store(batch)?;
        let pack = mem::take(&mut *self.packer.lock().expect("packer lock"));
        if !pack.is_empty() {
            self.upload(pack)?;
        }
        Ok(())
    }

    /// Every chunk id the snapshot uses.
    pub(crate) fn into_used(self) -> Vec<ChunkId> {
        self.used.into_inner().expect("used lock").into_iter().collect()
    }
}
