//! Restore: a whole snapshot, or the sub-paths asked for, into a target directory.
//!
//! Nothing is ever written outside the target: every name from the vault is checked
//! (no `/`, `..` or NUL — a hostile vault could hold them), directories are created by
//! this restore and checked not to be symlinks, and files are opened with `O_NOFOLLOW`.
//! Files are written by worker threads; holes are skipped so sparse files stay sparse;
//! directory metadata is applied last, deepest first, so their times stick. Reads overlap
//! writes: a batch of small files is read from the moment it is queued, and a worker reads
//! the next run of a large file's chunks while it writes the current one.
//!
//! Damage in the vault costs only what it touches: a directory whose tree cannot be read
//! is skipped with everything below it, a file whose content cannot be read is removed,
//! and both are named in [`RestoreSummary::damaged`]; everything else is restored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use kura_format::tree::{Extent, Node, NodeKind};
use kura_format::{ChunkId, SnapshotId};

use crate::backup::prefetch::TreePrefetch;
use crate::browse::{find, path_names, root_of};
use crate::{AgentError, OpenVault, Result};

/// Chunks fetched per request while writing a file. The next run is read while one is
/// written, so a worker holds two: as much as one run of 16 before reads overlapped.
const READ_BATCH: usize = 8;

/// Where and what to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Paths inside the snapshot; empty means everything.
    pub includes: Vec<PathBuf>,
    /// Allow a non-empty target and replace what is in the way.
    pub overwrite: bool,
    /// Read every file back once written and compare it with the snapshot (restore
    /// drills); what differs is named in [`RestoreSummary::mismatches`].
    pub verify: bool,
}

/// Live counters, for progress display.
#[derive(Default, Debug)]
pub struct RestoreProgress {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

/// What a restore did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreSummary {
    pub snapshot_id: String,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub duration_s: f64,
    /// Entries or metadata that could not be restored.
    pub errors: Vec<String>,
    /// Files and directories not restored because their data in the vault is damaged or
    /// lost: "path: why".
    pub damaged: Vec<String>,
    /// With [`RestoreOptions::verify`]: files whose content read back from the target is
    /// not what the snapshot holds, "path: how".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
}

/// Problems met on the way, as "path: why".
#[derive(Default)]
struct Problems {
    errors: Mutex<Vec<String>>,
    damaged: Mutex<Vec<String>>,
    mismatches: Mutex<Vec<String>>,
}

impl Problems {
    fn error(&self, path: &Path, why: impl std::fmt::Display) {
        push(&self.errors, path, why);
    }

    fn damaged(&self, path: &Path, what: &str, why: impl std::fmt::Display) {
        push(&self.damaged, path, format!("{what}: {why}"));
    }

    /// A file that could not be written: damage in the vault (the partial file is removed,
    /// so nothing half-restored passes for whole) or a failure here.
    fn file_failed(&self, path: &Path, e: AgentError) {
        if e.is_damage() {
            let _ = std::fs::remove_file(path);
            self.damaged(path, "damaged file, not restored", e);
        } else {
            self.error(path, e);
        }
    }
}

fn push(list: &Mutex<Vec<String>>, path: &Path, why: impl std::fmt::Display) {
    list.lock()
        .expect("problems lock")
        .push(format!("{}: {why}", path.display()));
}

struct FileJob {
    path: PathBuf,
    node: Node,
}

/// Blobs being read on the runtime while the thread that will write them does other work.
struct Fetch {
    ids: Vec<ChunkId>,
    blobs: tokio::task::JoinHandle<Result<Vec<Bytes>>>,
}

impl Fetch {
    fn start(vault: &OpenVault, ids: Vec<ChunkId>) -> Fetch {
        let (repo, request) = (Arc::clone(&vault.repo), ids.clone());
        let blobs = vault.handle.spawn(async move { repo.read_blobs(&request).await });
        Fetch { ids, blobs }
    }

    /// The blobs, in the order of `ids`.
    fn wait(self, vault: &OpenVault) -> Result<(Vec<ChunkId>, Vec<Bytes>)> {
        let blobs = vault
            .handle
            .block_on(self.blobs)
            .map_err(|e| AgentError::Aborted(format!("a read stopped: {e}")))??;
        Ok((self.ids, blobs))
    }
}

/// What a worker writes: one file, or small files whose chunks are already being read.
struct Batch {
    jobs: Vec<FileJob>,
    small: Option<Fetch>,
}

/// Small files travel to the workers in batches whose chunks are fetched with one read:
/// per-file round trips to the vault cost more than the data of a small file.
const SMALL_BATCH_FILES: usize = 64;
const SMALL_BATCH_BYTES: u64 = 4 << 20;

/// Restores snapshot `id`. Call from a thread outside the async runtime.
pub fn run(
    vault: &OpenVault,
    id: &SnapshotId,
    options: &RestoreOptions,
    progress: Arc<RestoreProgress>,
) -> Result<RestoreSummary> {
    let started = std::time::Instant::now();
    let target = &options.target;
    prepare_target(target, options.overwrite)?;
    let root = vault.handle.block_on(root_of(vault, id))?;

    let problems = Problems::default();
    // What to restore: (path relative to the target, node or the root).
    let mut selected: Vec<(Vec<Vec<u8>>, Option<Node>)> = Vec::new();
    if options.includes.is_empty() {
        selected.push((Vec::new(), None));
    } else {
        for inc in &options.includes {
            let names = path_names(inc)?;
            match vault
                .handle
                .block_on(find(vault, &root, &names, &inc.display().to_string()))
            {
                Ok(node) => selected.push((names, node)),
                Err(e) if e.is_damage() => problems.damaged(inc, "a directory on its way is damaged", e),
                Err(e) => return Err(e),
            }
        }
    }

    // Writing files is mostly system calls that wait on the file system: two workers per
    // core keep the cores busy.
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .clamp(4, 16);
    // Queued small batches are being read: the queue bounds the reads ahead of the writers.
    let (tx, rx) = sync_channel::<Batch>(workers);
    let rx = Arc::new(Mutex::new(rx));
    let mut walker = RestoreWalk {
        vault,
        overwrite: options.overwrite,
        jobs: tx,
        small: Vec::new(),
        small_bytes: 0,
        dirs: Vec::new(),
        links: Vec::new(),
        first_links: HashMap::new(),
        problems: &problems,
        files: 0,
        bytes: 0,
    };
    let walk_result = std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let (problems, progress) = (&problems, &progress);
            let verify = options.verify;
            scope.spawn(move || write_files(vault, &rx, problems, progress, verify));
        }
        let result = TreePrefetch::with(vault, |trees| {
            for (names, node) in &selected {
                let mut dir = target.clone();
                // Intermediate directories of an included path.
                for name in names.iter().take(names.len().saturating_sub(1)) {
                    dir = dir.join(safe_name(name)?);
                    walker.make_dir(&dir)?;
                }
                match node {
                    None => walker.restore_tree(target, &root, trees)?,
                    Some(node) => walker.restore_node(&dir, node, trees)?,
                }
            }
            walker.flush_small()
        });
        drop(std::mem::replace(&mut walker.jobs, sync_channel(1).0));
        result
    });
    walk_result?;
    for (link, original) in &walker.links {
        if options.overwrite {
            let _ = std::fs::remove_file(link);
        }
        if let Err(e) = std::fs::hard_link(original, link) {
            problems.error(link, e);
        }
    }
    // Directory metadata last, deepest first.
    let dirs = std::mem::take(&mut walker.dirs);
    for (path, node) in dirs.iter().rev() {
        apply_metadata(path, node, &problems);
    }
    let (files, bytes) = (walker.files, walker.bytes);
    Ok(RestoreSummary {
        snapshot_id: id.to_hex(),
        files,
        dirs: dirs.len() as u64,
        bytes,
        duration_s: started.elapsed().as_secs_f64(),
        errors: problems.errors.into_inner().expect("problems lock"),
        damaged: problems.damaged.into_inner().expect("problems lock"),
        mismatches: problems.mismatches.into_inner().expect("problems lock"),
    })
}

fn prepare_target(target: &Path, overwrite: bool) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(target).map_err(|e| AgentError::io(target, e))?;
            if !overwrite && entries.next().is_some() {
                return Err(AgentError::Usage(format!(
                    "target {} is not empty — restore into an empty directory, or add --overwrite",
                    target.display()
                )));
            }
            Ok(())
        }
        Ok(_) => Err(AgentError::Usage(format!(
            "target {} exists and is not a directory",
            target.display()
        ))),
        Err(_) => std::fs::create_dir_all(target).map_err(|e| AgentError::io(target, e)),
    }
}

fn safe_name(name: &[u8]) -> Result<&std::ffi::OsStr> {
    let n = Node::new(name, NodeKind::File);
    if !n.has_safe_name() {
        return Err(AgentError::Unsafe(format!(
            "the snapshot holds an entry named {:?}, which could escape the target",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(std::ffi::OsStr::from_bytes(name))
}

struct RestoreWalk<'a> {
    vault: &'a OpenVault,
    overwrite: bool,
    jobs: std::sync::mpsc::SyncSender<Batch>,
    /// Single-chunk files waiting to be sent as one batch.
    small: Vec<FileJob>,
    small_bytes: u64,
    dirs: Vec<(PathBuf, Node)>,
    /// Hard links to create once files are written: (link, original).
    links: Vec<(PathBuf, PathBuf)>,
    first_links: HashMap<(u64, u64), PathBuf>,
    problems: &'a Problems,
    files: u64,
    bytes: u64,
}

impl RestoreWalk<'_> {
    /// Creates a directory, or accepts an existing real one (never a symlink to one).
    fn make_dir(&self, path: &Path) -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if self.overwrite => remove_entry(path)?,
            Ok(_) => {
                return Err(AgentError::Usage(format!(
                    "{} exists and is not a directory",
                    path.display()
                )));
            }
            Err(_) => {}
        }
        std::fs::create_dir(path).map_err(|e| AgentError::io(path, e))
    }

    /// Restores the entries of a tree. Trees come from the prefetcher: through the server
    /// every fetch is a round trip, and one per directory, one after the other, made
    /// restores of trees with many directories wait on the network.
    fn restore_tree(&mut self, dir: &Path, tree_id: &ChunkId, trees: &TreePrefetch) -> Result<()> {
        let tree = match trees.take(tree_id) {
            Ok(tree) => tree,
            Err(e) if e.is_damage() => {
                self.problems
                    .damaged(dir, "damaged directory, nothing below it restored", e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for node in &tree.nodes {
            self.restore_node(dir, node, trees)?;
        }
        Ok(())
    }

    fn restore_node(&mut self, dir: &Path, node: &Node, trees: &TreePrefetch) -> Result<()> {
        let path = dir.join(safe_name(&node.name)?);
        match node.kind {
            NodeKind::Dir => {
                self.make_dir(&path)?;
                if let Some(sub) = &node.subtree {
                    self.restore_tree(&path, sub, trees)?;
                }
                self.dirs.push((path, node.clone()));
            }
            NodeKind::File => {
                self.files += 1;
                if node.nlink > 1 {
                    let key = (node.dev, node.inode);
                    if let Some(first) = self.first_links.get(&key) {
                        self.links.push((path, first.clone()));
                        return Ok(());
                    }
                    self.first_links.insert(key, path.clone());
                }
                self.bytes += node.size;
                let job = FileJob {
                    path,
                    node: node.clone(),
                };
                if matches!(node.content.as_slice(), [] | [Extent::Chunk(_)]) {
                    self.small_bytes += node.size;
                    self.small.push(job);
                    if self.small.len() >= SMALL_BATCH_FILES || self.small_bytes >= SMALL_BATCH_BYTES {
                        self.flush_small()?;
                    }
                } else {
                    self.send(Batch {
                        jobs: vec![job],
                        small: None,
                    })?;
                }
            }
            NodeKind::Symlink => {
                self.clear(&path)?;
                let target = node
                    .link_target
                    .as_deref()
                    .map(|t| t.as_slice())
                    .unwrap_or_default();
                match std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path) {
                    Ok(()) => apply_metadata(&path, node, self.problems),
                    Err(e) => self.problems.error(&path, e),
                }
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                self.clear(&path)?;
                let ft = match node.kind {
                    NodeKind::Fifo => rustix::fs::FileType::Fifo,
                    NodeKind::CharDevice => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                let mode = rustix::fs::Mode::from_raw_mode(node.mode & 0o777);
                match rustix::fs::mknodat(rustix::fs::CWD, &path, ft, mode, node.rdev) {
                    Ok(()) => apply_metadata(&path, node, self.problems),
                    Err(e) => self.problems.error(&path, e),
                }
            }
            // A socket is recreated by the program that owns it, not by a restore.
            NodeKind::Socket => {}
        }
        Ok(())
    }

    fn send(&self, batch: Batch) -> Result<()> {
        self.jobs
            .send(batch)
            .map_err(|_| AgentError::Aborted("restore workers stopped".into()))
    }

    fn flush_small(&mut self) -> Result<()> {
        self.small_bytes = 0;
        if self.small.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.small);
        // A lone file is written as any other; a batch's chunks are read from now on.
        let small = (jobs.len() > 1).then(|| {
            let ids = jobs
                .iter()
                .filter_map(|job| match job.node.content.first() {
                    Some(Extent::Chunk(id)) => Some(*id),
                    _ => None,
                })
                .collect();
            Fetch::start(self.vault, ids)
        });
        self.send(Batch { jobs, small })
    }

    fn clear(&self, path: &Path) -> Result<()> {
        if self.overwrite && std::fs::symlink_metadata(path).is_ok() {
            remove_entry(path)?;
        }
        Ok(())
    }
}

fn remove_entry(path: &Path) -> Result<()> {
    let m = std::fs::symlink_metadata(path).map_err(|e| AgentError::io(path, e))?;
    let r = if m.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    r.map_err(|e| AgentError::io(path, e))
}

/// Worker: writes the content of files.
fn write_files(
    vault: &OpenVault,
    jobs: &Mutex<Receiver<Batch>>,
    problems: &Problems,
    progress: &RestoreProgress,
    verify: bool,
) {
    loop {
        let Ok(Batch { jobs: batch, small }) = jobs.lock().expect("job lock").recv() else {
            return;
        };
        let done = |job: &FileJob, result: Result<Expected>| match result {
            Ok(expected) => {
                progress.files.fetch_add(1, Ordering::Relaxed);
                if let Err(how) = expected.check(&job.path, job.node.size) {
                    push(&problems.mismatches, &job.path, how);
                }
                apply_metadata(&job.path, &job.node, problems);
            }
            Err(e) => problems.file_failed(&job.path, e),
        };
        let Some(read) = small else {
            for job in &batch {
                done(job, write_file(vault, &job.path, &job.node, progress, verify));
            }
            continue;
        };
        // Small files: every chunk of the batch in one read.
        let (ids, blobs) = match read.wait(vault) {
            Ok(read) => read,
            // One bad chunk must not cost the others: fall back to file by file.
            Err(_) => {
                for job in &batch {
                    done(job, write_file(vault, &job.path, &job.node, progress, verify));
                }
                continue;
            }
        };
        let mut blobs = ids.iter().zip(blobs);
        for job in &batch {
            let result = match job.node.content.first() {
                Some(Extent::Chunk(_)) => {
                    let (id, blob) = blobs.next().expect("one blob per single-chunk file");
                    vault
                        .codec
                        .open(id, &blob)
                        .map_err(AgentError::from)
                        .and_then(|data| write_small_file(&job.path, &job.node, &data, progress, verify))
                }
                _ => write_small_file(&job.path, &job.node, &[], progress, verify),
            };
            done(job, result);
        }
    }
}

/// What a written file should read back as, when the restore verifies (a digest of the
/// snapshot's content, taken from the checked chunks as they are written).
struct Expected(Option<(blake3::Hasher, u64)>);

impl Expected {
    fn new(verify: bool) -> Self {
        Expected(verify.then(|| (blake3::Hasher::new(), 0)))
    }

    fn data(&mut self, data: &[u8]) {
        if let Some((hasher, len)) = &mut self.0 {
            hasher.update(data);
            *len += data.len() as u64;
        }
    }

    fn zeros(&mut self, mut n: u64) {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        while self.0.is_some() && n > 0 {
            let step = n.min(ZEROS.len() as u64);
            self.data(&ZEROS[..step as usize]);
            n -= step;
        }
    }

    /// Reads the file back and compares it with what the snapshot holds (its content, and
    /// zeros up to its recorded size); `Err` says how it differs.
    fn check(mut self, path: &Path, size: u64) -> std::result::Result<(), String> {
        let Some((_, len)) = self.0 else { return Ok(()) };
        self.zeros(size.saturating_sub(len));
        let Some((expected, _)) = self.0 else {
            return Ok(());
        };
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| format!("cannot read it back: {e}"))?;
        let mut found = blake3::Hasher::new();
        let read = std::io::copy(&mut file, &mut found).map_err(|e| format!("cannot read it back: {e}"))?;
        if read != size {
            return Err(format!("{read} bytes on disk where the snapshot holds {size}"));
        }
        if found.finalize() != expected.finalize() {
            return Err("its content on disk differs from the snapshot".into());
        }
        Ok(())
    }
}

/// Writes a file whose whole content is `data`.
fn write_small_file(
    path: &Path,
    node: &Node,
    data: &[u8],
    progress: &RestoreProgress,
    verify: bool,
) -> Result<Expected> {
    let mut file = create_file(path)?;
    file.write_all(data).map_err(|e| AgentError::io(path, e))?;
    progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    finish_file(&file, path, node, data.len() as u64, data.len() as u64)?;
    let mut expected = Expected::new(verify);
    expected.data(data);
    Ok(expected)
}

/// Creates (or truncates) the file at `path`, never following a symlink there.
fn create_file(path: &Path) -> Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(path)
    };
    match open() {
        Ok(f) => Ok(f),
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            remove_entry(path)?;
            open().map_err(|e| AgentError::io(path, e))
        }
        Err(e) => Err(AgentError::io(path, e)),
    }
}

/// Trailing holes, and the size check that catches a short or overlong snapshot entry.
/// `pos` is where the content ends, `written` where the last write ended.
fn finish_file(file: &File, path: &Path, node: &Node, pos: u64, written: u64) -> Result<()> {
    // The file was created empty: only a trailing hole or a short entry needs the length set.
    if written < node.size.max(pos) {
        file.set_len(node.size.max(pos))
            .map_err(|e| AgentError::io(path, e))?;
    }
    if pos > node.size {
        return Err(AgentError::Unsafe(format!(
            "content is longer than the recorded size of {}",
            path.display()
        )));
    }
    Ok(())
}

/// A file's content in the order it is written: holes, and runs of chunks read with one
/// request each.
enum Step {
    Hole(u64),
    Chunks(Vec<ChunkId>),
}

fn steps(content: &[Extent]) -> Vec<Step> {
    let mut steps = Vec::new();
    for extent in content {
        match (extent, steps.last_mut()) {
            (Extent::Hole(n), _) => steps.push(Step::Hole(*n)),
            (Extent::Chunk(id), Some(Step::Chunks(ids))) if ids.len() < READ_BATCH => ids.push(*id),
            (Extent::Chunk(id), _) => steps.push(Step::Chunks(vec![*id])),
        }
    }
    steps
}

fn write_file(
    vault: &OpenVault,
    path: &Path,
    node: &Node,
    progress: &RestoreProgress,
    verify: bool,
) -> Result<Expected> {
    let mut file = create_file(path)?;
    let mut expected = Expected::new(verify);
    let steps = steps(&node.content);
    // Each run is read while the one before it is written.
    let mut reads = steps.iter().filter_map(|step| match step {
        Step::Chunks(ids) => Some(Fetch::start(vault, ids.clone())),
        Step::Hole(_) => None,
    });
    let mut next = reads.next();
    let mut pos = 0u64;
    let mut written = 0u64;
    for step in &steps {
        match step {
            Step::Hole(n) => {
                pos += n;
                expected.zeros(*n);
                file.seek(SeekFrom::Start(pos))
                    .map_err(|e| AgentError::io(path, e))?;
            }
            Step::Chunks(_) => {
                let read = std::mem::replace(&mut next, reads.next()).expect("one read per run of chunks");
                let (ids, blobs) = read.wait(vault)?;
                for (id, blob) in ids.iter().zip(blobs) {
                    let data = vault.codec.open(id, &blob)?;
                    file.write_all(&data).map_err(|e| AgentError::io(path, e))?;
                    expected.data(&data);
                    pos += data.len() as u64;
                    written = pos;
                    progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    finish_file(&file, path, node, pos, written)?;
    Ok(expected)
}

/// Owner, mode, extended attributes and times; failures are reported, not fatal
/// (an unprivileged user cannot give files away).
fn apply_metadata(path: &Path, node: &Node, problems: &Problems) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
    let report = |what: &str, e: &dyn std::fmt::Display| problems.error(path, format!("{what}: {e}"));
    static AM_ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let am_root = *AM_ROOT.get_or_init(|| rustix::process::geteuid().is_root());
    if am_root
        && let Err(e) = rustix::fs::chownat(
            CWD,
            path,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
    {
        report("owner", &e);
    }
    if node.kind != NodeKind::Symlink
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
    {
        report("mode", &e);
    }
    for (name, value) in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(name);
        if let Err(e) = xattr::set(path, name, value)
            && (am_root || !name.as_bytes().starts_with(b"trusted."))
        {
            report("extended attribute", &e);
        }
    }
    let ts = |ns: i64| Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    let times = Timestamps {
        last_access: ts(node.atime_ns),
        last_modification: ts(node.mtime_ns),
    };
    if let Err(e) = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        report("times", &e);
    }
}
