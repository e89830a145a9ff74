//! The tenant's snapshots as its users see them ("web restore"): list them across the
//! tenant's machines ([`list`]), show one ([`show`]), browse a directory without reading
//! file data ([`tree`]) and download a file or a folder as a `.tar` ([`download`]) — of
//! file snapshots, and of the ext2/3/4 file systems inside image snapshots.
//!
//! **Who.** Every operation takes a [`UserPrincipal`], whose [`TenantScope`] is the only
//! way to the tenant's vault: listing and showing need the `view-status` permission,
//! browsing and downloading `restore` ([`Permission`]). A snapshot id of another tenant
//! names nothing in this tenant's vault, so it answers exactly as an unknown id.
//!
//! **Encrypted vaults.** The service never holds a vault key. Browsing or downloading
//! from an encrypted vault takes the vault's passphrase (or its recovery key) with the
//! request ([`Passphrase`]): it unwraps the key from the vault's stored key slot
//! (Argon2id, at most [`CONCURRENT_UNLOCKS`] at a time on this server), the key lives in
//! memory for that request only, and neither is stored or logged. A passphrase that opens
//! no slot is refused and the refusal recorded (`snapshot.unlock`). Listing and showing
//! need no key: they read the manifests' service-readable header.
//!
//! **Cost.** A page of [`list`] is a constant number of statements whatever the number of
//! snapshots: one indexed page of the vault catalog (several when filtering by machine),
//! the manifests of that page, and their owners from `snapshot_owners`. [`tree`] reads
//! the trees on the way to one directory (for an image, the chunks the partition table
//! and file system metadata live in), never file data. [`download`] streams: it reads a
//! few chunks ahead of what the client has taken, whatever the size of the file or the
//! folder, and writes the `.tar` as it goes ([`tar`]). Each download is recorded in the
//! tenant's event log when it ends (`snapshot.download`: who, which snapshot and path,
//! how many bytes, and whether it completed).

mod archive;
mod image;
mod path;
mod tar;
mod zip;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use kura_format::manifest::SnapshotStats;
use kura_format::tree::{Extent, Node, NodeKind, Tree, split_path};
use kura_format::{BlobCodec, ChunkId, FormatError, SnapshotId, SnapshotKind};
use kura_store::{SnapshotQuery, StoreError, Vault};
use tokio::sync::{Semaphore, mpsc};

use self::archive::{Archive, ArchiveEntry, ArchiveKind};
use super::record;
use super::vault::{find, store_error};
use crate::audit::Action;
use crate::authz::{Permission, TenantScope, UserPrincipal};
use crate::db::{machines, snapshots as owners};
use crate::ids::MachineId;
use crate::vaults::TenantVault;
use crate::{Service, ServiceError, ServiceResult};

pub use archive::ArchiveFormat;
pub use image::{ImageLayout, PartitionInfo};
pub use path::SnapshotPath;

/// Snapshots on one page of [`list`] unless asked otherwise, and the most.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;
/// Entries on one page of [`tree`] unless asked otherwise, and the most.
pub const DEFAULT_TREE_PAGE: u32 = 500;
pub const MAX_TREE_PAGE: u32 = 5000;
/// Passphrases unwrapped at once on this server: each Argon2id run takes 64 MiB and
/// about an eighth of a second of two cores (more with a slot's own parameters).
pub const CONCURRENT_UNLOCKS: usize = 2;
/// A machine with at most this many snapshots is listed by looking its ids up; one with
/// more by reading the catalog's time order and keeping its own (it is then dense enough
/// that a page fills quickly).
const MACHINE_LOOKUP: usize = 2000;
/// Vault catalog rows read per statement while filtering a page by machine.
const MACHINE_SCAN: usize = 2000;
/// Chunks read per request while streaming a file.
const READ_BATCH: usize = 8;
/// Pieces of a download in flight between the reader and the client: a few MiB.
const STREAM_DEPTH: usize = 4;
/// The largest piece of zeros sent for a hole of a sparse file.
const HOLE_PIECE: u64 = 1 << 20;

static UNLOCKS: Semaphore = Semaphore::const_new(CONCURRENT_UNLOCKS);

/// A vault passphrase (or recovery key) sent for one request: never logged (its `Debug`
/// hides it), never stored, overwritten when dropped.
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    pub fn new(text: impl Into<Vec<u8>>) -> Self {
        Passphrase(text.into())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the wipe of a buffer about to be freed from being optimised away.
        std::hint::black_box(&self.0);
    }
}

/// What [`list`] lists.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only snapshots committed by this machine (its id).
    pub machine: Option<String>,
    /// Only snapshots with exactly this source name.
    pub source: Option<String>,
    pub kind: Option<SnapshotKind>,
    /// Only snapshots started at or after this time (ms since the epoch)…
    pub from_ms: Option<i64>,
    /// … and before this one.
    pub to_ms: Option<i64>,
    /// Snapshots on the page ([`DEFAULT_PAGE`] when unset, at most [`MAX_PAGE`]).
    pub limit: Option<u32>,
    /// Where the previous page ended ([`SnapshotPage::next_cursor`]).
    pub cursor: Option<String>,
}

/// One snapshot as users see it: the manifest's service-readable header and the machine
/// that committed it.
#[derive(Debug, Clone)]
pub struct SnapshotSummary {
    pub id: SnapshotId,
    /// `None` only for snapshots committed before machines were recorded.
    pub machine_id: Option<MachineId>,
    pub machine_name: Option<String>,
    pub kind: SnapshotKind,
    /// Start and end of the backup run, ns since the epoch (UTC).
    pub time_ns: i64,
    pub end_time_ns: i64,
    pub host: String,
    pub source: String,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub stats: SnapshotStats,
}

/// A page of [`list`], newest first.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPage {
    pub snapshots: Vec<SnapshotSummary>,
    /// Pass as [`ListFilter::cursor`] for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// One snapshot in full ([`show`]).
#[derive(Debug, Clone)]
pub struct SnapshotDetail {
    pub summary: SnapshotSummary,
    /// Whether browsing and downloading need the vault's passphrase.
    pub encrypted: bool,
    /// Whether a chunk it uses was found damaged or missing by verification.
    pub damaged: bool,
    /// Chunks it references (file data, trees, image blocks).
    pub reference_count: u64,
}

/// What kind of thing a [`TreeEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    /// A partition of an image snapshot (listed at its root); a directory when its file
    /// system can be browsed.
    Partition,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDevice => "char_device",
            EntryKind::BlockDevice => "block_device",
            EntryKind::Socket => "socket",
            EntryKind::Partition => "partition",
        }
    }

    fn of_node(kind: NodeKind) -> Self {
        match kind {
            NodeKind::File => EntryKind::File,
            NodeKind::Dir => EntryKind::Dir,
            NodeKind::Symlink => EntryKind::Symlink,
            NodeKind::Fifo => EntryKind::Fifo,
            NodeKind::CharDevice => EntryKind::CharDevice,
            NodeKind::BlockDevice => EntryKind::BlockDevice,
            NodeKind::Socket => EntryKind::Socket,
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// The name as stored (bytes; usually UTF-8).
    pub name: Vec<u8>,
    /// Its path in the snapshot, for the next `tree` or `download` call.
    pub path: SnapshotPath,
    pub kind: EntryKind,
    /// Bytes of a file; the target's length for a symlink; a partition's length.
    pub size: u64,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    pub link_target: Option<Vec<u8>>,
    /// For partitions: where it is and what it holds.
    pub partition: Option<PartitionInfo>,
}

impl TreeEntry {
    /// The name for display, with invalid UTF-8 replaced.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A page of one directory ([`tree`]).
#[derive(Debug, Clone)]
pub struct TreePage {
    pub snapshot_id: SnapshotId,
    /// The directory listed, normalised (`/` for the root).
    pub path: SnapshotPath,
    /// Entries in the directory (all pages), and where this page starts.
    pub total: u64,
    pub offset: u64,
    /// Sorted by name.
    pub entries: Vec<TreeEntry>,
    /// At the root of an image snapshot: its size, partition table and partitions.
    pub image: Option<ImageLayout>,
}

/// What a download sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    /// One file's bytes.
    File,
    /// A folder as a `.tar`.
    Tar,
    /// A folder as a `.zip`.
    Zip,
}

impl DownloadKind {
    pub(crate) fn of_archive(format: ArchiveFormat) -> Self {
        match format {
            ArchiveFormat::Tar => DownloadKind::Tar,
            ArchiveFormat::Zip => DownloadKind::Zip,
        }
    }
}

/// A download under way: its name and kind, then its bytes as they are read. Dropping
/// the receiver stops the reading; the download is recorded either way.
pub struct Download {
    /// The file name to offer (a file's own name, or the folder's name with `.tar` or
    /// `.zip`).
    pub file_name: String,
    pub kind: DownloadKind,
    /// Bytes of a single file, known before the first is sent; `None` for an archive.
    pub size: Option<u64>,
    pub body: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("file_name", &self.file_name)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

// ----- listing -----

fn cursor_text(time_ns: i64, id: &SnapshotId) -> String {
    format!("{time_ns}.{}", id.to_hex())
}

fn parse_cursor(text: &str) -> ServiceResult<(i64, SnapshotId)> {
    let invalid =
        || ServiceError::invalid("cursor is not one this service gave: pass next_cursor as it came");
    let (time, id) = text.split_once('.').ok_or_else(invalid)?;
    let time = time.parse::<i64>().map_err(|_| invalid())?;
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid());
    }
    Ok((time, SnapshotId::from_str(id).map_err(|_| invalid())?))
}

fn ms_to_ns(what: &str, ms: i64) -> ServiceResult<i64> {
    ms.checked_mul(1_000_000)
        .ok_or_else(|| ServiceError::invalid(format!("{what} is out of range")))
}

/// The tenant's snapshots, newest first, a page at a time (see the module docs for the
/// cost). A tenant without a vault has none; a machine id of no machine of the tenant
/// matches none.
pub async fn list(svc: &Service, user: &UserPrincipal, filter: &ListFilter) -> ServiceResult<SnapshotPage> {
    user.require(Permission::ViewStatus)?;
    let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    let mut query = SnapshotQuery {
        kind: filter.kind,
        source: filter.source.clone(),
        from_ns: filter.from_ms.map(|ms| ms_to_ns("from", ms)).transpose()?,
        to_ns: filter.to_ms.map(|ms| ms_to_ns("to", ms)).transpose()?,
        after: filter.cursor.as_deref().map(parse_cursor).transpose()?,
    };
    let machine = match filter.machine.as_deref() {
        None => None,
        Some(text) => Some(MachineId::parse(text).ok_or_else(|| {
            ServiceError::invalid("machine must be a machine id (32 lower-case hex digits)")
        })?),
    };
    let Some(tv) = find(svc, &user.scope).await? else {
        return Ok(SnapshotPage::default());
    };
    let mut picked: Vec<(SnapshotId, i64)> = Vec::with_capacity(limit + 1);
    match &machine {
        None => {
            picked = tv
                .vault
                .snapshot_page(&query, limit + 1)
                .await
                .map_err(store_error)?;
        }
        Some(machine) => {
            let owned = machines::machine_snapshots(&svc.db, &user.scope, machine).await?;
            if owned.len() <= MACHINE_LOOKUP {
                let ids: Vec<SnapshotId> = owned
                    .iter()
                    .filter_map(|id| SnapshotId::from_str(id).ok())
                    .collect();
                picked = tv
                    .vault
                    .snapshot_page_among(&query, &ids, limit + 1)
                    .await
                    .map_err(store_error)?;
            }
            let owned: HashSet<String> = owned.into_iter().collect();
            while owned.len() > MACHINE_LOOKUP && picked.len() <= limit {
                let heads = tv
                    .vault
                    .snapshot_page(&query, MACHINE_SCAN)
                    .await
                    .map_err(store_error)?;
                let last_batch = heads.len() < MACHINE_SCAN;
                if let Some((id, time)) = heads.last() {
                    query.after = Some((*time, *id));
                }
                picked.extend(
                    heads
                        .into_iter()
                        .filter(|(id, _)| owned.contains(&id.to_hex()))
                        .take(limit + 1 - picked.len()),
                );
                if last_batch {
                    break;
                }
            }
        }
    }
    let next_cursor = if picked.len() > limit {
        picked.truncate(limit);
        picked.last().map(|(id, time)| cursor_text(*time, id))
    } else {
        None
    };
    let ids: Vec<SnapshotId> = picked.iter().map(|(id, _)| *id).collect();
    let snapshots = summaries(svc, &user.scope, &tv, &ids).await?;
    Ok(SnapshotPage {
        snapshots,
        next_cursor,
    })
}

/// The summaries of `ids` (live ones, in order), with their machines.
async fn summaries(
    svc: &Service,
    scope: &TenantScope,
    tv: &TenantVault,
    ids: &[SnapshotId],
) -> ServiceResult<Vec<SnapshotSummary>> {
    let records = tv.vault.manifests(ids).await.map_err(store_error)?;
    let hex: Vec<String> = records.iter().map(|r| r.id.to_hex()).collect();
    let mut by_id: HashMap<String, owners::SnapshotOwner> = owners::owners(&svc.db, scope, &hex)
        .await?
        .into_iter()
        .map(|owner| (owner.snapshot_id.clone(), owner))
        .collect();
    Ok(records
        .into_iter()
        .zip(hex)
        .map(|(record, hex)| {
            let owner = by_id.remove(&hex);
            let m = record.manifest;
            SnapshotSummary {
                id: record.id,
                machine_id: owner.as_ref().map(|o| o.machine_id.clone()),
                machine_name: owner.map(|o| o.machine_name),
                kind: m.kind,
                time_ns: m.time_ns,
                end_time_ns: m.end_time_ns,
                host: m.host,
                source: m.source,
                tags: m.tags,
                parent: m.parent,
                stats: m.stats,
            }
        })
        .collect())
}

/// The snapshot `spec` names: a full id or a unique prefix of one (hex), among the
/// tenant's live snapshots. Anything else, another tenant's id included, is unknown.
async fn resolve(
    svc: &Service,
    scope: &TenantScope,
    spec: &str,
) -> ServiceResult<(Arc<TenantVault>, SnapshotId)> {
    let unknown = || ServiceError::not_found(format!("no snapshot matches {spec:?}"));
    if spec.is_empty() || spec.len() > 64 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let tv = find(svc, scope).await?.ok_or_else(unknown)?;
    let id = tv.vault.resolve(spec).await.map_err(|err| match err {
        StoreError::UnknownSnapshot(_) => unknown(),
        other => store_error(other),
    })?;
    Ok((tv, id))
}

/// One snapshot: its header, its machine, whether it is damaged and whether its vault
/// is encrypted.
pub async fn show(svc: &Service, user: &UserPrincipal, spec: &str) -> ServiceResult<SnapshotDetail> {
    user.require(Permission::ViewStatus)?;
    let (tv, id) = resolve(svc, &user.scope, spec).await?;
    let summary = summaries(svc, &user.scope, &tv, &[id])
        .await?
        .pop()
        .ok_or_else(|| ServiceError::not_found(format!("no snapshot matches {spec:?}")))?;
    let manifest = tv.vault.manifest(&id).await.map_err(store_error)?;
    Ok(SnapshotDetail {
        summary,
        encrypted: tv.vault.config().encrypted,
        damaged: tv.vault.is_damaged(&id).await.map_err(store_error)?,
        reference_count: manifest.reference_count,
    })
}

// ----- reading a snapshot -----

/// A snapshot opened for one request: the vault, the codec (with the key, for an
/// encrypted vault) and the snapshot's root.
#[derive(Clone)]
struct Opened {
    vault: Vault,
    codec: Arc<BlobCodec>,
    id: SnapshotId,
    kind: SnapshotKind,
    /// Root tree (files) or image index (images).
    root: ChunkId,
}

/// Stored data that cannot be read back: named, never hidden.
fn damaged(what: &str, err: impl fmt::Display) -> ServiceError {
    ServiceError::unavailable(format!(
        "{what} cannot be read from the vault ({err}); run a verify job or ask your provider"
    ))
}

impl Opened {
    async fn plain(&self, id: &ChunkId) -> ServiceResult<Vec<u8>> {
        let blob = self.vault.read_blob(id).await.map_err(|err| match err {
            StoreError::MissingChunk(_) => damaged("part of this snapshot", err),
            other => store_error(other),
        })?;
        self.codec
            .open(id, &blob)
            .map_err(|err| damaged("part of this snapshot", err))
    }

    async fn tree(&self, id: &ChunkId) -> ServiceResult<Tree> {
        Tree::decode(&self.plain(id).await?).map_err(|err| damaged("a directory", err))
    }

    /// The node at `names` below the root, or `None` for the root itself.
    async fn find(&self, names: &[Vec<u8>], shown: &SnapshotPath) -> ServiceResult<Option<Node>> {
        let not_found = || ServiceError::not_found(format!("{shown:?} is not in this snapshot"));
        let mut tree = self.tree(&self.root).await?;
        let mut found = None;
        for (i, name) in names.iter().enumerate() {
            let node = tree.find(name).cloned().ok_or_else(not_found)?;
            if i + 1 < names.len() {
                let sub = node
                    .subtree
                    .filter(|_| node.kind == NodeKind::Dir)
                    .ok_or_else(not_found)?;
                tree = self.tree(&sub).await?;
            }
            found = Some(node);
        }
        Ok(found)
    }
}

/// Opens snapshot `spec` for reading, unwrapping the vault key from `passphrase` when
/// the vault is encrypted (see the module docs).
async fn open(
    svc: &Service,
    user: &UserPrincipal,
    spec: &str,
    passphrase: Option<&Passphrase>,
) -> ServiceResult<Opened> {
    user.require(Permission::Restore)?;
    let (tv, id) = resolve(svc, &user.scope, spec).await?;
    let config = tv.vault.config().clone();
    let key = if config.encrypted {
        let Some(passphrase) = passphrase else {
            return Err(ServiceError::invalid(
                "this tenant's vault is encrypted: browsing and downloading need its passphrase \
                 (or recovery key), sent with this request only (header X-Kura-Passphrase, or the \
                 form field `passphrase` of a POST); it is never stored or logged",
            ));
        };
        let slots = tv.vault.key_slots().await.map_err(store_error)?;
        let permit = UNLOCKS
            .acquire()
            .await
            .map_err(|err| ServiceError::internal("unlock semaphore closed", &err))?;
        let secret = passphrase.0.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let passphrase = Passphrase(secret);
            kura_format::keys::open_any_slot(&slots, &passphrase.0)
        })
        .await
        .map_err(|err| ServiceError::internal("unlocking the vault key panicked", &err))?;
        drop(permit);
        match opened {
            Ok(key) => Some(key),
            Err(FormatError::WrongPassphrase) => {
                record(
                    svc,
                    &user.actor,
                    &user.scope,
                    Action::SnapshotUnlock,
                    &id.to_hex(),
                    "refused: wrong passphrase",
                )
                .await?;
                return Err(ServiceError::forbidden(
                    "wrong passphrase: it opens none of this vault's key slots; nothing was read",
                ));
            }
            Err(err) => return Err(damaged("the vault's key slots", err)),
        }
    } else {
        None
    };
    let (codec, _) = config
        .codec(key.as_ref())
        .map_err(|err| damaged("the vault configuration", err))?;
    let manifest = tv.vault.manifest(&id).await.map_err(store_error)?;
    let body = manifest
        .open_body(&codec)
        .map_err(|err| damaged("the snapshot's manifest", err))?;
    Ok(Opened {
        vault: tv.vault.clone(),
        codec: Arc::new(codec),
        id,
        kind: manifest.kind,
        root: body.root,
    })
}

/// A path from a request split into names; `..` is refused.
fn names_of(path: &SnapshotPath) -> ServiceResult<Vec<Vec<u8>>> {
    split_path(path.as_bytes()).map_err(|_| {
        ServiceError::invalid(format!(
            "path {path:?} is not allowed: `..` and NUL cannot appear in a snapshot path"
        ))
    })
}

fn entry_of_node(dir: &SnapshotPath, node: &Node) -> TreeEntry {
    TreeEntry {
        name: node.name.to_vec(),
        path: dir.join(&node.name),
        kind: EntryKind::of_node(node.kind),
        size: node.size,
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtime_ns: node.mtime_ns,
        link_target: node.link_target.as_ref().map(|t| t.to_vec()),
        partition: None,
    }
}

/// Entries `offset..offset + limit` of a sorted listing.
fn page<T>(all: Vec<T>, offset: u64, limit: Option<u32>) -> (u64, Vec<T>) {
    let total = all.len() as u64;
    let limit = limit.unwrap_or(DEFAULT_TREE_PAGE).clamp(1, MAX_TREE_PAGE) as usize;
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
    (total, all.into_iter().skip(start).take(limit).collect())
}

/// One page of the directory at `path` of snapshot `spec`: names, kinds, sizes, modes
/// and times, without reading file data. For an image snapshot, `/` lists its
/// partitions and `/N/...` the directories of the ext2/3/4 file system on partition N.
pub async fn tree(
    svc: &Service,
    user: &UserPrincipal,
    spec: &str,
    path: &SnapshotPath,
    passphrase: Option<&Passphrase>,
    offset: u64,
    limit: Option<u32>,
) -> ServiceResult<TreePage> {
    let names = names_of(path)?;
    let opened = open(svc, user, spec, passphrase).await?;
    let shown = SnapshotPath::of_names(&names);
    if opened.kind == SnapshotKind::Image {
        return image::tree(opened, names, shown, offset, limit).await;
    }
    let tree_id = match opened.find(&names, &shown).await? {
        None => opened.root,
        Some(node) if node.kind == NodeKind::Dir => node
            .subtree
            .ok_or_else(|| damaged(&format!("directory {shown:?}"), "it has no tree"))?,
        Some(_) => {
            return Err(ServiceError::invalid(format!(
                "{shown:?} is not a directory: download it instead"
            )));
        }
    };
    let tree = opened.tree(&tree_id).await?;
    // Only the page's entries are made (a directory may hold 100,000).
    let (total, nodes) = page(tree.nodes, offset, limit);
    let entries = nodes.iter().map(|n| entry_of_node(&shown, n)).collect();
    Ok(TreePage {
        snapshot_id: opened.id,
        path: shown,
        total,
        offset,
        entries,
        image: None,
    })
}

// ----- downloads -----

/// Counts what a download sent and records it in the tenant's log when it ends.
struct Sent {
    svc: Service,
    user: UserPrincipal,
    target: String,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    bytes: u64,
    /// The CRC-32 of what is sent while one is running (a zip entry's content).
    crc: Option<crc32fast::Hasher>,
}

/// Why a download stopped before its end.
enum Stop {
    /// The client went away.
    Gone,
    /// Reading failed; the client gets a broken stream, the log the reason.
    Failed(ServiceError),
}

impl From<ServiceError> for Stop {
    fn from(err: ServiceError) -> Self {
        Stop::Failed(err)
    }
}

impl Sent {
    async fn send(&mut self, bytes: impl Into<Bytes>) -> Result<(), Stop> {
        let bytes = bytes.into();
        let n = bytes.len() as u64;
        if let Some(crc) = &mut self.crc {
            crc.update(&bytes);
        }
        self.tx.send(Ok(bytes)).await.map_err(|_| Stop::Gone)?;
        self.bytes += n;
        Ok(())
    }

    fn blocking_send(&mut self, bytes: impl Into<Bytes>) -> Result<(), Stop> {
        let bytes = bytes.into();
        let n = bytes.len() as u64;
        if let Some(crc) = &mut self.crc {
            crc.update(&bytes);
        }
        self.tx.blocking_send(Ok(bytes)).map_err(|_| Stop::Gone)?;
        self.bytes += n;
        Ok(())
    }

    /// Starts a CRC-32 of what is sent next, when the archive needs one.
    fn start_crc(&mut self, archive: &Archive) {
        self.crc = archive.needs_crc().then(crc32fast::Hasher::new);
    }

    /// The CRC-32 of what was sent since [`Sent::start_crc`] (0 when none ran).
    fn take_crc(&mut self) -> u32 {
        self.crc.take().map_or(0, crc32fast::Hasher::finalize)
    }

    /// Records how the download ended; a failure also breaks the client's stream.
    async fn finish(self, outcome: Result<(), Stop>) {
        let result = match &outcome {
            Ok(()) => format!("ok: {} bytes", self.bytes),
            Err(Stop::Gone) => format!("interrupted by the client after {} bytes", self.bytes),
            Err(Stop::Failed(err)) => format!("failed after {} bytes: {err}", self.bytes),
        };
        if let Err(Stop::Failed(err)) = outcome {
            tracing::warn!(tenant_id = %self.user.scope.tenant_id(), target = %self.target, error = %err, "download failed");
            let _ = self.tx.send(Err(std::io::Error::other(err.message))).await;
        }
        if let Err(err) = record(
            &self.svc,
            &self.user.actor,
            &self.user.scope,
            Action::SnapshotDownload,
            &self.target,
            &result,
        )
        .await
        {
            tracing::error!(error = %err, target = %self.target, "a download could not be recorded in the event log");
        }
    }
}

/// The archive a folder goes into: a zip's local times are the tenant's.
async fn archive_for(svc: &Service, scope: &TenantScope, format: ArchiveFormat) -> ServiceResult<Archive> {
    let zone = match format {
        ArchiveFormat::Tar => jiff::tz::TimeZone::UTC,
        ArchiveFormat::Zip => crate::db::tenants::get(&svc.db, scope)
            .await?
            .and_then(|tenant| jiff::tz::TimeZone::get(&tenant.time_zone).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC),
    };
    Ok(Archive::new(format, zone))
}

/// Starts a download of `path` of snapshot `spec`: a file's bytes, or a directory (the
/// whole snapshot for `/`) as a `.tar` or `.zip` (`format`) of its files, directories
/// and symlinks (device files, fifos and sockets are left out). In an image snapshot, `path` is `/N/...` on
/// the ext2/3/4 file system of partition N. Errors found before the first byte (unknown
/// snapshot or path, `..`, wrong passphrase) are returned; later ones end the stream.
pub async fn download(
    svc: &Service,
    user: &UserPrincipal,
    spec: &str,
    path: &SnapshotPath,
    passphrase: Option<&Passphrase>,
    format: ArchiveFormat,
) -> ServiceResult<Download> {
    let names = names_of(path)?;
    let opened = open(svc, user, spec, passphrase).await?;
    let archive = archive_for(svc, &user.scope, format).await?;
    let shown = SnapshotPath::of_names(&names);
    let (tx, rx) = mpsc::channel(STREAM_DEPTH);
    let sent = Sent {
        svc: svc.clone(),
        user: user.clone(),
        target: format!("{} {}", opened.id.to_hex(), shown.text()),
        tx,
        bytes: 0,
        crc: None,
    };
    if opened.kind == SnapshotKind::Image {
        return image::download(opened, names, sent, rx, archive).await;
    }
    let node = opened.find(&names, &shown).await?;
    let top_name = match &node {
        None => format!("snapshot-{}", opened.id.short()),
        Some(node) => String::from_utf8_lossy(&node.name).into_owned(),
    };
    match node {
        Some(node) if node.kind == NodeKind::File => {
            let size = node.size;
            tokio::spawn(async move {
                let mut sent = sent;
                let outcome = send_content(&opened, &node, &mut sent).await;
                sent.finish(outcome).await;
            });
            Ok(Download {
                file_name: top_name,
                kind: DownloadKind::File,
                size: Some(size),
                body: rx,
            })
        }
        None
        | Some(Node {
            kind: NodeKind::Dir, ..
        }) => {
            let (mode, uid, gid, mtime_ns, tree_id) = match &node {
                None => (0o755, 0, 0, 0, opened.root),
                Some(n) => (
                    n.mode,
                    n.uid,
                    n.gid,
                    n.mtime_ns,
                    n.subtree
                        .ok_or_else(|| damaged(&format!("directory {shown:?}"), "it has no tree"))?,
                ),
            };
            let top = TopDir {
                name: tar_safe(&top_name),
                mode,
                uid,
                gid,
                mtime_ns,
                tree: tree_id,
            };
            tokio::spawn(async move {
                let mut sent = sent;
                let outcome = send_archive(&opened, top, archive, &mut sent).await;
                sent.finish(outcome).await;
            });
            Ok(Download {
                file_name: format!("{top_name}{}", format.extension()),
                kind: DownloadKind::of_archive(format),
                size: None,
                body: rx,
            })
        }
        Some(node) => Err(ServiceError::invalid(format!(
            "{shown:?} is a {}: only files and folders can be downloaded",
            EntryKind::of_node(node.kind).as_str().replace('_', " ")
        ))),
    }
}

/// A name usable as an archive's top directory.
fn tar_safe(name: &str) -> Vec<u8> {
    let name: String = name.chars().map(|c| if c == '/' { '_' } else { c }).collect();
    match name.as_str() {
        "" | "." | ".." => b"snapshot".to_vec(),
        _ => name.into_bytes(),
    }
}

/// Sends a file's content: its chunks, read a few at a time, and its holes as zeros. The
/// bytes sent are exactly the size the tree records, or the download fails.
async fn send_content(opened: &Opened, node: &Node, sent: &mut Sent) -> Result<(), Stop> {
    let mut written = 0u64;
    let mut pending: Vec<ChunkId> = Vec::new();
    let extents = node.content.iter().map(Some).chain(std::iter::once(None));
    for extent in extents {
        match extent {
            Some(Extent::Chunk(id)) if pending.len() < READ_BATCH => {
                pending.push(*id);
                continue;
            }
            _ => {}
        }
        if !pending.is_empty() {
            let blobs = opened.vault.read_blobs(&pending).await.map_err(|err| match err {
                StoreError::MissingChunk(_) => damaged("part of this file", err),
                other => store_error(other),
            })?;
            for (id, blob) in pending.iter().zip(blobs) {
                let data = opened
                    .codec
                    .open(id, &blob)
                    .map_err(|err| damaged("part of this file", err))?;
                written += data.len() as u64;
                if written > node.size {
                    return Err(damaged("this file", "its content is longer than its recorded size").into());
                }
                sent.send(data).await?;
            }
            pending.clear();
        }
        match extent {
            Some(Extent::Chunk(id)) => pending.push(*id),
            Some(Extent::Hole(len)) => {
                let mut left = *len;
                written += left;
                if written > node.size {
                    return Err(damaged("this file", "its content is longer than its recorded size").into());
                }
                while left > 0 {
                    let n = left.min(HOLE_PIECE);
                    sent.send(vec![0u8; n as usize]).await?;
                    left -= n;
                }
            }
            None => {}
        }
    }
    if written != node.size {
        return Err(damaged("this file", "its content is shorter than its recorded size").into());
    }
    Ok(())
}

/// The directory an archive download starts at.
struct TopDir {
    name: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    tree: ChunkId,
}

/// Sends the directory tree below `top` as an archive, depth first, names sorted. Only
/// directory trees are held (one per level on the way down), never file data.
async fn send_archive(
    opened: &Opened,
    top: TopDir,
    mut archive: Archive,
    sent: &mut Sent,
) -> Result<(), Stop> {
    let header = archive.start(&ArchiveEntry {
        path: &top.name,
        kind: ArchiveKind::Dir,
        mode: top.mode,
        uid: top.uid.into(),
        gid: top.gid.into(),
        mtime: top.mtime_ns.div_euclid(1_000_000_000),
    });
    sent.send(header).await?;
    let first = opened.tree(&top.tree).await?;
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Node>)> = vec![(top.name, first.nodes.into_iter())];
    while let Some((dir, mut nodes)) = stack.pop() {
        let Some(node) = nodes.next() else { continue };
        stack.push((dir.clone(), nodes));
        if !node.has_safe_name() {
            continue;
        }
        let mut path = dir;
        path.push(b'/');
        path.extend_from_slice(&node.name);
        let mut entry = ArchiveEntry {
            path: &path,
            kind: ArchiveKind::Dir,
            mode: node.mode,
            uid: node.uid.into(),
            gid: node.gid.into(),
            mtime: node.mtime_ns.div_euclid(1_000_000_000),
        };
        match node.kind {
            NodeKind::Dir => {
                sent.send(archive.start(&entry)).await?;
                if let Some(sub) = node.subtree {
                    let tree = opened.tree(&sub).await?;
                    stack.push((path.clone(), tree.nodes.into_iter()));
                }
            }
            NodeKind::File => {
                entry.kind = ArchiveKind::File { size: node.size };
                sent.send(archive.start(&entry)).await?;
                sent.start_crc(&archive);
                send_content(opened, &node, sent).await?;
                let crc = sent.take_crc();
                sent.send(archive.end_file(crc)).await?;
            }
            NodeKind::Symlink => {
                let target = node
                    .link_target
                    .as_deref()
                    .map(|t| t.to_vec())
                    .unwrap_or_default();
                entry.kind = ArchiveKind::Symlink { target: &target };
                sent.send(archive.start(&entry)).await?;
            }
            // Device files, fifos and sockets have no content to download.
            _ => {}
        }
    }
    sent.send(archive.finish()).await
}
