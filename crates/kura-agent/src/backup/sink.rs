//! Where chunks go: deduplicated against the vault in batches, sealed, packed and
//! uploaded. Every id the snapshot uses is recorded for its reference list.

use std::collections::HashSet;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use kura_format::{BlobKind, ChunkId, PackWriter};
use kura_store::SessionId;

use crate::{OpenVault, Result};

/// A batch is checked against the vault when it holds this many chunks or bytes.
const BATCH_CHUNKS: usize = 256;
const BATCH_BYTES: usize = 8 << 20;

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

/// A full pack is handed straight to the uploader (a rendezvous): one pack uploading while
/// the next fills. Readers wait on storage only when it is slower than they are, and the
/// packs in memory stay at two (a queued third cost 17 MiB of peak RSS for no speed).
const UPLOAD_QUEUE: usize = 0;

/// How often a running backup tells the vault it is alive. A server expires the sessions
/// of agents that stopped talking after minutes (see `kura_service::vaults`), so that a
/// killed backup's uploads do not hold space back from gc for hours.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Sends heartbeats for a session until dropped.
struct KeepAlive(tokio::task::JoinHandle<()>);

impl KeepAlive {
    fn start(vault: &OpenVault, session: &SessionId) -> Self {
        let (repo, session) = (Arc::clone(&vault.repo), session.clone());
        KeepAlive(vault.handle.spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                // A failed heartbeat is not fatal here: if the session is gone, the next
                // upload or the commit says so with a precise error.
                let _ = repo.heartbeat(&session).await;
            }
        }))
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Figures and the first failure of the uploader thread.
#[derive(Default)]
struct UploadState {
    bytes_added: AtomicU64,
    failure: Mutex<Option<crate::AgentError>>,
}

/// Thread-safe destination of a backup's chunks.
pub(crate) struct ChunkSink {
    vault: OpenVault,
    session: SessionId,
    batch: Mutex<Batch>,
    /// Trees go to packs of their own, as in restic: the next backup and every restore
    /// read a snapshot's trees first, and then find them in a few packs, side by side,
    /// instead of one or two in each data pack.
    data_pack: Mutex<PackWriter>,
    tree_pack: Mutex<PackWriter>,
    used: Mutex<HashSet<ChunkId>>,
    uploads: Mutex<Option<SyncSender<PackWriter>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    state: Arc<UploadState>,
    pub(crate) chunks_added: AtomicU64,
    _keep_alive: KeepAlive,
}

impl ChunkSink {
    pub(crate) fn new(vault: OpenVault, session: SessionId) -> Self {
        let (tx, rx) = sync_channel::<PackWriter>(UPLOAD_QUEUE);
        let state = Arc::new(UploadState::default());
        let uploader = {
            let (vault, session, state) = (vault.clone(), session.clone(), Arc::clone(&state));
            std::thread::spawn(move || {
                for pack in rx {
                    if state.failure.lock().expect("failure lock").is_some() {
                        continue;
                    }
                    let (_, bytes, _) = pack.finish();
                    match vault
                        .handle
                        .block_on(vault.repo.put_pack(&session, Bytes::from(bytes)))
                    {
                        Ok(receipt) => {
                            state
                                .bytes_added
                                .fetch_add(receipt.stored_bytes, Ordering::Relaxed);
                        }
                        Err(e) => *state.failure.lock().expect("failure lock") = Some(e),
                    }
                }
            })
        };
        ChunkSink {
            _keep_alive: KeepAlive::start(&vault, &session),
            vault,
            session,
            batch: Mutex::new(Batch::default()),
            data_pack: Mutex::new(PackWriter::new()),
            tree_pack: Mutex::new(PackWriter::new()),
            used: Mutex::new(HashSet::new()),
            uploads: Mutex::new(Some(tx)),
            uploader: Mutex::new(Some(uploader)),
            state,
            chunks_added: AtomicU64::new(0),
        }
    }

    /// Stored bytes added so far.
    pub(crate) fn bytes_added(&self) -> u64 {
        self.state.bytes_added.load(Ordering::Relaxed)
    }

    fn failure(&self) -> Option<crate::AgentError> {
        self.state.failure.lock().expect("failure lock").take()
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
            let mut packer = self.pack_for(p.kind).lock().expect("packer lock");
            packer.add(p.id, p.kind, &blob, p.data.len() as u32);
            self.chunks_added.fetch_add(1, Ordering::Relaxed);
            if packer.is_full() {
                // A preallocated writer: growing one by doubling past 16 MiB would touch 32 MiB.
                let pack = mem::replace(&mut *packer, PackWriter::new());
                // Handed over with the packer still locked: while the uploader is busy, the
                // other workers wait here with one sealed blob each, instead of each filling
                // and holding a pack of its own (seen: peak RSS 120-173 MiB run to run).
                self.upload(pack)?;
            }
        }
        Ok(())
    }

    fn pack_for(&self, kind: BlobKind) -> &Mutex<PackWriter> {
        match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        }
    }

    fn upload(&self, pack: PackWriter) -> Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let sender = self.uploads.lock().expect("uploads lock").clone();
        match sender {
            Some(tx) if tx.send(pack).is_ok() => Ok(()),
            _ => Err(self
                .failure()
                .unwrap_or_else(|| crate::AgentError::Aborted("the uploader stopped".into()))),
        }
    }

    /// Stores what is still batched or packed and waits for every upload. Call once all
    /// submitters are done.
    pub(crate) fn flush(&self) -> Result<()> {
        let batch = mem::take(&mut *self.batch.lock().expect("batch lock"));
        self.store(batch)?;
        for packer in [&self.data_pack, &self.tree_pack] {
            let pack = mem::take(&mut *packer.lock().expect("packer lock"));
            if !pack.is_empty() {
                self.upload(pack)?;
            }
        }
        self.stop_uploader();
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stop_uploader(&self) {
        drop(self.uploads.lock().expect("uploads lock").take());
        if let Some(t) = self.uploader.lock().expect("uploader lock").take() {
            let _ = t.join();
        }
    }

    /// Every chunk id the snapshot uses.
    pub(crate) fn into_used(self) -> Vec<ChunkId> {
        self.stop_uploader();
        mem::take(&mut *self.used.lock().expect("used lock"))
            .into_iter()
            .collect()
    }
}

impl Drop for ChunkSink {
    /// On an error path the uploader must still finish before the session is aborted.
    fn drop(&mut self) {
        self.stop_uploader();
    }
}
