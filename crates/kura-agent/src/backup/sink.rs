//! Where chunks go: deduplicated against the vault in batches, sealed, packed and
//! uploaded. Every id the snapshot uses is recorded for its reference list.
//!
//! Threads: the readers submit chunks and check each batch against the vault; sealer
//! threads (one per core) compress and encrypt the missing ones and fill the packs; one
//! uploader stores full packs. Sealing is most of a backup's CPU, and with its own threads
//! it keeps every core busy even when one large file is all that is left to read (the
//! reader that sealed its own chunks left the other core idle at the end of a backup).

use std::collections::HashSet;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use kura_format::{BlobKind, ChunkId, PackWriter};
use kura_store::{PackFile, PackReceipt, SessionId, Vault};

use crate::{OpenVault, Result};

/// A batch is checked against the vault when it holds this many chunks or bytes.
const BATCH_CHUNKS: usize = 256;
const BATCH_BYTES: usize = 8 << 20;

/// Chunks go to the sealers in groups of up to this many bytes or chunks: a hand-off per
/// chunk woke a thread 32 000 times for the benchmark's 1 GiB (mostly small files), and
/// 8-10 % of the backup's CPU went to the scheduler and futexes; in groups, 4 %.
const SEAL_GROUP_BYTES: usize = 1 << 20;
const SEAL_GROUP_CHUNKS: usize = 64;
/// Groups waiting for a sealer: enough that a sealer never waits on a reader's dedup
/// query, few enough to keep memory flat.
const SEAL_QUEUE: usize = 8;

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

/// A full pack in memory is handed straight to the uploader (a rendezvous): one pack
/// uploading while the next fills. Sealers wait on storage only when it is slower than
/// they are, and the packs in memory stay at two (a queued third cost 17 MiB of peak RSS
/// for no speed).
const UPLOAD_QUEUE: usize = 0;
/// A local vault's packs are files and hold no memory, so they queue: storing one is
/// quick on average (a rename and its catalog rows), but indexing a pack of thousands of
/// small files holds the catalog for a while, and the sealers must not wait for that.
const FILE_UPLOAD_QUEUE: usize = 8;

/// A pack being filled: straight into a local vault's folder, or in memory for an upload.
enum OpenPack {
    /// Boxed: a pack file carries its running BLAKE3 state (2 KiB).
    File(Box<PackFile>, Vault),
    Memory(PackWriter),
}

impl OpenPack {
    fn new(vault: &OpenVault) -> Result<Self> {
        if let Some(local) = vault.repo.local_vault()
            && let Some(file) = local.new_pack_file()?
        {
            return Ok(OpenPack::File(Box::new(file), local.clone()));
        }
        // A preallocated writer: growing one by doubling past 16 MiB would touch 32 MiB.
        Ok(OpenPack::Memory(PackWriter::new()))
    }

    fn add(&mut self, id: ChunkId, kind: BlobKind, blob: &[u8], raw_length: u32) -> Result<()> {
        match self {
            OpenPack::File(file, _) => file.add(id, kind, blob, raw_length)?,
            OpenPack::Memory(writer) => writer.add(id, kind, blob, raw_length),
        }
        Ok(())
    }

    fn is_full(&self) -> bool {
        match self {
            OpenPack::File(file, _) => file.is_full(),
            OpenPack::Memory(writer) => writer.is_full(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            OpenPack::File(file, _) => file.is_empty(),
            OpenPack::Memory(writer) => writer.is_empty(),
        }
    }

    /// Stores the pack in the vault of `session`.
    fn store(self, vault: &OpenVault, session: &SessionId) -> Result<PackReceipt> {
        match self {
            OpenPack::File(file, local) => Ok(vault.handle.block_on(local.put_pack_file(session, *file))?),
            OpenPack::Memory(writer) => {
                let (_, bytes, _) = writer.finish();
                vault
                    .handle
                    .block_on(vault.repo.put_pack(session, Bytes::from(bytes)))
            }
        }
    }
}

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

/// Figures and the first failure of the sealers and the uploader.
#[derive(Default)]
struct UploadState {
    bytes_added: AtomicU64,
    chunks_added: AtomicU64,
    failure: Mutex<Option<crate::AgentError>>,
}

impl UploadState {
    /// Records `e` unless an earlier failure is recorded.
    fn fail(&self, e: crate::AgentError) {
        self.failure.lock().expect("failure lock").get_or_insert(e);
    }

    fn failed(&self) -> bool {
        self.failure.lock().expect("failure lock").is_some()
    }

    fn take_failure(&self) -> Option<crate::AgentError> {
        self.failure.lock().expect("failure lock").take()
    }
}

/// The packing side of a sink, shared by its sealer threads.
struct Packing {
    vault: OpenVault,
    /// Trees go to packs of their own, as in restic: the next backup and every restore
    /// read a snapshot's trees first, and then find them in a few packs, side by side,
    /// instead of one or two in each data pack. A pack is opened when its first blob comes.
    data_pack: Mutex<Option<OpenPack>>,
    tree_pack: Mutex<Option<OpenPack>>,
    uploads: Mutex<Option<SyncSender<OpenPack>>>,
    state: Arc<UploadState>,
}

impl Packing {
    /// Seals a chunk and adds it to its pack; a full pack goes to the uploader.
    fn pack(&self, p: Pending) -> Result<()> {
        let blob = self.vault.codec.seal(&p.id, &p.data)?;
        let mut slot = self.pack_for(p.kind).lock().expect("packer lock");
        let packer = match &mut *slot {
            Some(packer) => packer,
            None => slot.insert(OpenPack::new(&self.vault)?),
        };
        packer.add(p.id, p.kind, &blob, p.data.len() as u32)?;
        self.state.chunks_added.fetch_add(1, Ordering::Relaxed);
        if packer.is_full() {
            let pack = slot.take().expect("filled above");
            // Handed over with the packer still locked: while the uploader is busy, the
            // other sealers wait here with one sealed blob each, instead of each filling
            // and holding a pack of its own (seen: peak RSS 120-173 MiB run to run).
            self.upload(pack)?;
        }
        Ok(())
    }

    fn pack_for(&self, kind: BlobKind) -> &Mutex<Option<OpenPack>> {
        match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        }
    }

    fn upload(&self, pack: OpenPack) -> Result<()> {
        if let Some(e) = self.state.take_failure() {
            return Err(e);
        }
        let sender = self.uploads.lock().expect("uploads lock").clone();
        match sender {
            Some(tx) if tx.send(pack).is_ok() => Ok(()),
            _ => Err(self.stopped("uploader")),
        }
    }

    /// The recorded failure that stopped a thread of the sink, or a note that `which` stopped.
    fn stopped(&self, which: &str) -> crate::AgentError {
        self.state
            .take_failure()
            .unwrap_or_else(|| crate::AgentError::Aborted(format!("the {which} stopped")))
    }
}

/// Sealer thread: seals and packs chunks until the queue closes. After a failure it only
/// drains the queue, so that nobody blocks on it.
fn seal_chunks(packing: &Packing, queue: &Mutex<Receiver<Vec<Pending>>>) {
    loop {
        let next = queue.lock().expect("seal queue lock").recv();
        let Ok(group) = next else { return };
        for p in group {
            if packing.state.failed() {
                break;
            }
            if let Err(e) = packing.pack(p) {
                packing.state.fail(e);
            }
        }
    }
}

/// Thread-safe destination of a backup's chunks.
pub(crate) struct ChunkSink {
    session: SessionId,
    batch: Mutex<Batch>,
    used: Mutex<HashSet<ChunkId>>,
    packing: Arc<Packing>,
    seals: Mutex<Option<SyncSender<Vec<Pending>>>>,
    sealers: Mutex<Vec<JoinHandle<()>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    _keep_alive: KeepAlive,
}

impl ChunkSink {
    pub(crate) fn new(vault: OpenVault, session: SessionId) -> Self {
        let queue = match vault.repo.local_vault() {
            Some(_) => FILE_UPLOAD_QUEUE,
            None => UPLOAD_QUEUE,
        };
        let (tx, rx) = sync_channel::<OpenPack>(queue);
        let state = Arc::new(UploadState::default());
        let uploader = {
            let (vault, session, state) = (vault.clone(), session.clone(), Arc::clone(&state));
            std::thread::spawn(move || {
                for pack in rx {
                    if state.failed() {
                        continue;
                    }
                    match pack.store(&vault, &session) {
                        Ok(receipt) => {
                            state
                                .bytes_added
                                .fetch_add(receipt.stored_bytes, Ordering::Relaxed);
                        }
                        Err(e) => state.fail(e),
                    }
                }
            })
        };
        let packing = Arc::new(Packing {
            vault: vault.clone(),
            data_pack: Mutex::new(None),
            tree_pack: Mutex::new(None),
            uploads: Mutex::new(Some(tx)),
            state,
        });
        let (seal_tx, seal_rx) = sync_channel::<Vec<Pending>>(SEAL_QUEUE);
        let seal_rx = Arc::new(Mutex::new(seal_rx));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sealers = (0..cores.clamp(1, 8))
            .map(|_| {
                let (packing, queue) = (Arc::clone(&packing), Arc::clone(&seal_rx));
                std::thread::spawn(move || seal_chunks(&packing, &queue))
            })
            .collect();
        ChunkSink {
            _keep_alive: KeepAlive::start(&vault, &session),
            session,
            batch: Mutex::new(Batch::default()),
            used: Mutex::new(HashSet::new()),
            packing,
            seals: Mutex::new(Some(seal_tx)),
            sealers: Mutex::new(sealers),
            uploader: Mutex::new(Some(uploader)),
        }
    }

    /// Stored bytes added so far.
    pub(crate) fn bytes_added(&self) -> u64 {
        self.packing.state.bytes_added.load(Ordering::Relaxed)
    }

    /// Chunks stored so far.
    pub(crate) fn chunks_added(&self) -> u64 {
        self.packing.state.chunks_added.load(Ordering::Relaxed)
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

    /// Checks a batch against the vault and queues the chunks it lacks for the sealers.
    fn store(&self, batch: Batch) -> Result<()> {
        if let Some(e) = self.packing.state.take_failure() {
            return Err(e);
        }
        let vault = &self.packing.vault;
        let ids: Vec<ChunkId> = batch.chunks.iter().map(|p| p.id).collect();
        let missing: HashSet<ChunkId> = vault
            .handle
            .block_on(vault.repo.missing(&self.session, &ids))?
            .into_iter()
            .collect();
        let Some(seals) = self.seals.lock().expect("seals lock").clone() else {
            return Err(self.packing.stopped("sealers"));
        };
        let send = |group: Vec<Pending>| seals.send(group).map_err(|_| self.packing.stopped("sealers"));
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for p in batch.chunks.into_iter().filter(|p| missing.contains(&p.id)) {
            group_bytes += p.data.len();
            group.push(p);
            if group_bytes >= SEAL_GROUP_BYTES || group.len() >= SEAL_GROUP_CHUNKS {
                group_bytes = 0;
                send(mem::take(&mut group))?;
            }
        }
        if group.is_empty() { Ok(()) } else { send(group) }
    }

    /// Stores what is still batched or packed and waits for every upload. Call once all
    /// submitters are done.
    pub(crate) fn flush(&self) -> Result<()> {
        let batch = mem::take(&mut *self.batch.lock().expect("batch lock"));
        self.store(batch)?;
        self.stop_sealers();
        for packer in [&self.packing.data_pack, &self.packing.tree_pack] {
            let pack = packer.lock().expect("packer lock").take();
            if let Some(pack) = pack.filter(|p| !p.is_empty()) {
                self.packing.upload(pack)?;
            }
        }
        self.stop_uploader();
        match self.packing.state.take_failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stop_sealers(&self) {
        drop(self.seals.lock().expect("seals lock").take());
        for sealer in self.sealers.lock().expect("sealers lock").drain(..) {
            let _ = sealer.join();
        }
    }

    fn stop_uploader(&self) {
        drop(self.packing.uploads.lock().expect("uploads lock").take());
        if let Some(t) = self.uploader.lock().expect("uploader lock").take() {
            let _ = t.join();
        }
    }

    /// Every chunk id the snapshot uses.
    pub(crate) fn into_used(self) -> Vec<ChunkId> {
        self.stop_sealers();
        self.stop_uploader();
        mem::take(&mut *self.used.lock().expect("used lock"))
            .into_iter()
            .collect()
    }
}

impl Drop for ChunkSink {
    /// On an error path the sealers and the uploader must still finish before the session
    /// is aborted.
    fn drop(&mut self) {
        self.stop_sealers();
        self.stop_uploader();
    }
}
