//! The walk: one thread lists directories and decides per file whether it must be read;
//! worker threads read, chunk and hash; one finisher thread builds each directory's tree
//! in post-order. See the module docs of [`super`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use kura_format::tree::{Extent, Node, NodeKind, Tree};
use kura_format::{BlobKind, ChunkId};
use serde_bytes::ByteBuf;

use super::BackupProgress;
use super::exclude::ExcludeRules;
use super::prefetch::{TreePrefetch, TreeTicket};
use super::reader::{link_target, read_file};
use super::sink::ChunkSink;
use crate::promise::Promise;
use crate::{AgentError, OpenVault, Result};

/// What the walk produced.
pub(super) struct Walked {
    pub root: ChunkId,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    pub changed: Vec<String>,
}

/// File content as the finisher receives it: extents and whether the file changed while
/// read, or why it could not be read.
#[derive(Clone)]
struct Content {
    extents: Arc<Vec<Extent>>,
    changed: bool,
}
type ContentPromise = Promise<std::result::Result<Content, String>>;
type TreePromise = Promise<std::result::Result<ChunkId, String>>;

struct FileJob {
    path: PathBuf,
    promise: ContentPromise,
}

struct PendingNode {
    node: Node,
    path: PathBuf,
    content: Option<ContentPromise>,
    subtree: Option<TreePromise>,
}

struct DirJob {
    nodes: Vec<PendingNode>,
    /// The id of this directory's tree in the parent snapshot.
    parent_id: Option<ChunkId>,
    result: TreePromise,
}

/// Which children of a directory were named on the command line.
#[derive(Default)]
struct Selection {
    children: BTreeMap<OsString, Option<Selection>>,
}

impl Selection {
    /// `None` means "everything" (`/` was given).
    fn from_paths(paths: &[PathBuf]) -> Option<Selection> {
        let mut root = Selection::default();
        for p in paths {
            let parts: Vec<&OsStr> = p
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect();
            if parts.is_empty() {
                return None;
            }
            let mut cur = &mut root;
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let slot = cur
                    .children
                    .entry(part.to_os_string())
                    .or_insert_with(|| Some(Selection::default()));
                if last {
                    *slot = None;
                    break;
                }
                match slot {
                    Some(sel) => cur = sel,
                    None => break, // an ancestor is already wholly selected
                }
            }
        }
        Some(root)
    }
}

/// Shared state of the threads of one walk.
struct Shared<'a> {
    vault: &'a OpenVault,
    sink: &'a ChunkSink,
    progress: &'a BackupProgress,
    abort: AtomicBool,
    fatal: Mutex<Option<AgentError>>,
}

impl Shared<'_> {
    fn fail(&self, e: AgentError) {
        self.abort.store(true, Ordering::SeqCst);
        let mut f = self.fatal.lock().expect("fatal lock");
        if f.is_none() {
            *f = Some(e);
        }
    }
    fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}

pub(super) fn walk(
    vault: &OpenVault,
    sink: &ChunkSink,
    paths: &[PathBuf],
    parent_root: Option<ChunkId>,
    excludes: &ExcludeRules,
    one_file_system: bool,
    progress: &BackupProgress,
) -> Result<Walked> {
    let shared = Shared {
        vault,
        sink,
        progress,
        abort: AtomicBool::new(false),
        fatal: Mutex::new(None),
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let (job_tx, job_rx) = sync_channel::<FileJob>(64);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (dir_tx, dir_rx) = sync_channel::<DirJob>(4096);
    let errors = Mutex::new(Vec::new());
    let changed = Mutex::new(Vec::new());

    let (root, counts) = std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = Arc::clone(&job_rx);
            let shared = &shared;
            scope.spawn(move || read_files(shared, &rx));
        }
        let finisher = scope.spawn(|| finish_dirs(&shared, dir_rx, &errors, &changed));
        let (root, counts) = TreePrefetch::with(vault, |prefetch| {
            let mut walker = Walker {
                shared: &shared,
                prefetch,
                jobs: job_tx,
                dirs: dir_tx,
                excludes,
                one_file_system,
                hard_links: HashMap::new(),
                errors: &errors,
                files: 0,
                dirs_count: 0,
                bytes: 0,
            };
            let selection = Selection::from_paths(paths);
            let root = walker.walk_dir(
                Path::new("/"),
                selection.as_ref(),
                parent_root.map(|id| prefetch.ticket(id)),
                &[],
                None,
            );
            (root, (walker.files, walker.dirs_count, walker.bytes))
        });
        let _ = finisher.join();
        (root.wait(), counts)
    });
    if let Some(e) = shared.fatal.into_inner().expect("fatal lock") {
        return Err(e);
    }
    let root = root.map_err(AgentError::Aborted)?;
    Ok(Walked {
        root,
        files: counts.0,
        dirs: counts.1,
        bytes: counts.2,
        errors: errors.into_inner().expect("errors lock"),
        changed: changed.into_inner().expect("changed lock"),
    })
}

/// Worker: reads the files the walker hands out.
fn read_files(shared: &Shared, jobs: &Mutex<Receiver<FileJob>>) {
    loop {
        let job = match jobs.lock().expect("job lock").recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        if shared.aborted() {
            job.promise.set(Err("backup aborted".into()));
            continue;
        }
        let on_bytes = |n: u64| {
            shared.progress.bytes_read.fetch_add(n, Ordering::Relaxed);
        };
        match read_file(shared.vault, shared.sink, &job.path, &on_bytes) {
            Ok(Ok(c)) => {
                shared.progress.files.fetch_add(1, Ordering::Relaxed);
                job.promise.set(Ok(Content {
                    extents: Arc::new(c.extents),
                    changed: c.changed,
                }))
            }
            Ok(Err(why)) => job.promise.set(Err(why)),
            Err(e) => {
                shared.fail(e);
                job.promise.set(Err("backup aborted".into()));
            }
        }
    }
}

/// Finisher: turns each directory's entries into a stored tree, children first.
fn finish_dirs(
    shared: &Shared,
    dirs: Receiver<DirJob>,
    errors: &Mutex<Vec<String>>,
    changed: &Mutex<Vec<String>>,
) {
    for job in dirs {
        let mut tree = Tree::new();
        for mut p in job.nodes {
            if let Some(content) = &p.content {
                match content.wait() {
                    Ok(c) => {
                        if c.changed {
                            changed
                                .lock()
                                .expect("changed lock")
                                .push(p.path.display().to_string());
                        }
                        p.node.content = c.extents.to_vec();
                    }
                    Err(why) => {
                        if !shared.aborted() {
                            errors
                                .lock()
                                .expect("errors lock")
                                .push(format!("{}: {why}", p.path.display()));
                        }
                        continue;
                    }
                }
            }
            if let Some(sub) = &p.subtree {
                match sub.wait() {
                    Ok(id) => p.node.subtree = Some(id),
                    Err(_) => continue,
                }
            }
            tree.nodes.push(p.node);
        }
        if shared.aborted() {
            job.result.set(Err("backup aborted".into()));
            continue;
        }
        tree.sort();
        let bytes = tree.encode();
        let id = shared.vault.codec.id(&bytes);
        // A tree identical to its parent's is stored already: the parent references it.
        let stored = match job.parent_id == Some(id) {
            true => {
                shared.sink.reuse(std::iter::once(&id));
                Ok(())
            }
            false => shared.sink.submit(id, BlobKind::Tree, bytes),
        };
        match stored {
            Ok(()) => job.result.set(Ok(id)),
            Err(e) => {
                shared.fail(e);
                job.result.set(Err("backup aborted".into()));
            }
        }
    }
}

struct Walker<'a, 'b> {
    shared: &'a Shared<'b>,
    prefetch: &'a TreePrefetch<'b>,
    jobs: SyncSender<FileJob>,
    dirs: SyncSender<DirJob>,
    excludes: &'a ExcludeRules,
    one_file_system: bool,
    hard_links: HashMap<(u64, u64), ContentPromise>,
    errors: &'a Mutex<Vec<String>>,
    files: u64,
    dirs_count: u64,
    bytes: u64,
}

impl<'a, 'b> Walker<'a, 'b> {
    fn error(&self, path: &Path, why: impl std::fmt::Display) {
        self.errors
            .lock()
            .expect("errors lock")
            .push(format!("{}: {why}", path.display()));
    }

    /// Lists `dir` and queues its work; returns the promise of its tree id. `selection`
    /// limits the walk to the named children (the ancestors of the backed-up paths).
    fn walk_dir(
        &mut self,
        dir: &Path,
        selection: Option<&Selection>,
        parent: Option<TreeTicket<'a, 'b>>,
        ignores: &[ExcludeRules],
        fs_dev: Option<u64>,
    ) -> TreePromise {
        let result = Promise::new();
        if self.shared.aborted() {
            result.set(Err("backup aborted".into()));
            return result;
        }
        let names: Vec<(OsString, Option<Option<&Selection>>)> = match selection {
            Some(sel) => sel
                .children
                .iter()
                .map(|(n, s)| (n.clone(), Some(s.as_ref())))
                .collect(),
            None => match list_dir(dir) {
                Ok(mut names) => {
                    names.sort();
                    names.into_iter().map(|n| (n, None)).collect()
                }
                Err(e) => {
                    self.error(dir, e);
                    Vec::new()
                }
            },
        };
        // Without its parent counterpart a directory is read whole, as in a first backup.
        let parent_id = parent.as_ref().map(|t| t.id());
        let parent = parent.and_then(|t| t.take().ok());
        // The parent's subdirectories still here; the trees of the others are released.
        let mut parent_subtrees: HashMap<&[u8], TreeTicket> = HashMap::new();
        if let Some(parent) = &parent {
            let listed: HashSet<&[u8]> = names.iter().map(|(n, _)| n.as_bytes()).collect();
            for node in &parent.nodes {
                if node.kind == NodeKind::Dir
                    && let Some(id) = node.subtree
                {
                    // Every subdirectory gets a ticket: the dropped ones release their trees.
                    let ticket = self.prefetch.ticket(id);
                    if listed.contains(node.name.as_slice()) {
                        parent_subtrees.insert(node.name.as_slice(), ticket);
                    }
                }
            }
        }
        let mut nodes = Vec::with_capacity(names.len());
        for (name, selected) in names {
            let path = dir.join(&name);
            let parent_tree = parent_subtrees.remove(name.as_bytes());
            // Paths named on the command line are never excluded; what is below them may be.
            if selected.is_none()
                && (self.excludes.excludes(&path) || ignores.iter().any(|r| r.excludes(&path)))
            {
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.error(&path, e);
                    continue;
                }
            };
            let parent_node = parent.as_ref().and_then(|t| t.find(name.as_bytes()));
            match self.entry(
                &path,
                &name,
                &meta,
                selected,
                parent_node,
                parent_tree,
                ignores,
                fs_dev,
            ) {
                Ok(Some(p)) => nodes.push(p),
                Ok(None) => {}
                Err(e) => self.error(&path, e),
            }
        }
        if self
            .dirs
            .send(DirJob {
                nodes,
                parent_id: parent.as_ref().and(parent_id),
                result: result.clone(),
            })
            .is_err()
        {
            result.set(Err("backup aborted".into()));
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        path: &Path,
        name: &OsStr,
        meta: &Metadata,
        selected: Option<Option<&Selection>>,
        parent_node: Option<&Node>,
        parent_tree: Option<TreeTicket<'a, 'b>>,
        ignores: &[ExcludeRules],
        fs_dev: Option<u64>,
    ) -> Result<Option<PendingNode>> {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_file() {
            NodeKind::File
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else if ft.is_block_device() {
            NodeKind::BlockDevice
        } else {
            NodeKind::Socket
        };
        let mut node = node_from_metadata(name.as_bytes(), kind, meta);
        node.xattrs = read_xattrs(path);
        let mut pending = PendingNode {
            node,
            path: path.to_path_buf(),
            content: None,
            subtree: None,
        };
        match kind {
            NodeKind::Dir => {
                self.dirs_count += 1;
                // Inside a named path: the file system of the named path, and ignore files.
                let inside = !matches!(selected, Some(Some(_)));
                let dev = if inside {
                    Some(fs_dev.unwrap_or(meta.dev()))
                } else {
                    None
                };
                let crosses = self.one_file_system && dev.is_some_and(|d| d != meta.dev());
                let child_selection = match selected {
                    Some(Some(sel)) => Some(sel),
                    _ => None,
                };
                let mut child_ignores = ignores.to_vec();
                if inside && !crosses {
                    match ExcludeRules::from_ignore_file(path) {
                        Ok(Some(rules)) => child_ignores.push(rules),
                        Ok(None) => {}
                        Err(e) => self.error(path, e),
                    }
                }
                let sub = if crosses {
                    // A mount point under --one-file-system: kept as an empty directory.
                    let empty = Promise::new();
                    self.dirs
                        .send(DirJob {
                            nodes: Vec::new(),
                            parent_id: None,
                            result: empty.clone(),
                        })
                        .map_err(|_| AgentError::Aborted("finisher stopped".into()))?;
                    empty
                } else {
                    self.walk_dir(path, child_selection, parent_tree, &child_ignores, dev)
                };
                pending.subtree = Some(sub);
            }
            NodeKind::File => {
                self.files += 1;
                self.bytes += meta.len();
                pending.content = Some(self.file_content(path, meta, parent_node));
            }
            NodeKind::Symlink => pending.node.link_target = Some(ByteBuf::from(link_target(path)?)),
            _ => {}
        }
        Ok(Some(pending))
    }

    /// The content promise of a file: from the parent when unchanged, shared between hard
    /// links, or a new read job.
    fn file_content(&mut self, path: &Path, meta: &Metadata, parent_node: Option<&Node>) -> ContentPromise {
        if let Some(p) = parent_node
            && p.kind == NodeKind::File
            && p.size == meta.len()
            && p.mtime_ns == mtime_ns(meta)
            && p.ctime_ns == ctime_ns(meta)
            && p.inode == meta.ino()
        {
            self.shared.sink.reuse(p.chunk_ids());
            self.shared
                .progress
                .bytes_skipped
                .fetch_add(meta.len(), Ordering::Relaxed);
            self.shared.progress.files.fetch_add(1, Ordering::Relaxed);
            return Promise::ready(Ok(Content {
                extents: Arc::new(p.content.clone()),
                changed: false,
            }));
        }
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1
            && let Some(existing) = self.hard_links.get(&key)
        {
            return existing.clone();
        }
        let promise = ContentPromise::new();
        if meta.nlink() > 1 {
            self.hard_links.insert(key, promise.clone());
        }
        let job = FileJob {
            path: path.to_path_buf(),
            promise: promise.clone(),
        };
        if self.jobs.send(job).is_err() {
            promise.set(Err("backup aborted".into()));
        }
        promise
    }
}

fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn ctime_ns(m: &Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

/// A tree node with everything the file system says about an entry.
fn node_from_metadata(name: &[u8], kind: NodeKind, meta: &Metadata) -> Node {
    let mut node = Node::new(name, kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.mtime_ns = mtime_ns(meta);
    node.atime_ns = meta.atime() * 1_000_000_000 + meta.atime_nsec();
    node.ctime_ns = ctime_ns(meta);
    if matches!(kind, NodeKind::File | NodeKind::Symlink) {
        node.size = meta.len();
    }
    if kind != NodeKind::Dir {
        node.dev = meta.dev();
        node.inode = meta.ino();
        node.nlink = meta.nlink();
    }
    if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        node.rdev = meta.rdev();
    }
    node
}

/// Extended attributes of an entry (not following symlinks). Unreadable ones are skipped:
/// a file system without xattrs is not an error.
fn read_xattrs(path: &Path) -> Vec<(ByteBuf, ByteBuf)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(ByteBuf, ByteBuf)> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some((ByteBuf::from(n.as_bytes().to_vec()), ByteBuf::from(value)))
        })
        .collect();
    out.sort();
    out
}

/// The names in a directory, read without touching its access time (see
/// [`super::reader::open_noatime`]).
fn list_dir(dir: &Path) -> std::io::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let fd = super::reader::open_noatime(dir)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}
