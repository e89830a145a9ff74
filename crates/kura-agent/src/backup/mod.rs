//! File backup: walk → read, chunk, hash (worker threads) → dedup, seal, pack, upload →
//! trees (post-order) → manifest and reference list → commit.
//!
//! The walker runs ahead of the workers through bounded queues, so memory stays bounded
//! and both cores stay busy. Files unchanged since the parent snapshot (same size, mtime,
//! ctime and inode) are taken from it without being read. Directories are finished in
//! post-order by one thread, so a directory's tree is built only after its children.

mod exclude;
pub(crate) mod prefetch;
mod reader;
pub(crate) mod sink;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use exclude::{ExcludeRules, IGNORE_FILE};
use kura_format::manifest::{MANIFEST_VERSION, SnapshotStats};
use kura_format::{Manifest, ManifestBody, ReferenceList, SnapshotId, SnapshotKind};
use serde_bytes::ByteBuf;
pub(crate) use sink::ChunkSink;

use crate::{AgentError, OpenVault, Result, now_ns};

/// What to back up and how.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    /// Name of the source; defaults to `host:path,path`.
    pub source: Option<String>,
    pub one_file_system: bool,
    /// Back up everything without consulting a parent snapshot.
    pub force_full: bool,
    /// Host name recorded in the manifest.
    pub host: String,
    /// The snapshot's time, when not now (nanoseconds since the Unix epoch).
    pub time_ns: Option<i64>,
}

/// Live counters, for progress display.
#[derive(Default, Debug)]
pub struct BackupProgress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_skipped: AtomicU64,
}

/// What a backup did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupSummary {
    pub snapshot_id: String,
    pub parent: Option<String>,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub chunks_added: u64,
    pub duration_s: f64,
    /// Files that could not be read (left out of the snapshot).
    pub errors: Vec<String>,
    /// Files that changed while being read (their snapshot content may be inconsistent).
    pub changed_while_reading: Vec<String>,
}

/// The source name used when none is given: `host:path,path`. The source name is
/// readable by whoever stores the vault, so in an encrypted vault the paths are replaced
/// by a keyed digest of them: stable across runs (parents are still found), meaningless
/// without the key. Key holders read the paths from the sealed manifest body.
pub fn default_source(vault: &OpenVault, host: &str, paths: &[PathBuf]) -> String {
    let joined: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let joined = joined.join(",");
    if vault.key.is_some() {
        let digest = vault.codec.id(joined.as_bytes()).to_hex();
        format!("{host}:paths-{}", &digest[..16])
    } else {
        format!("{host}:{joined}")
    }
}

/// Everything a snapshot's manifest records, gathered while the backup ran.
pub(crate) struct SnapshotDraft {
    pub kind: SnapshotKind,
    pub time_ns: i64,
    pub host: String,
    pub source: String,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub paths: Vec<String>,
    /// Root tree or image index.
    pub root: kura_format::ChunkId,
    pub stats: SnapshotStats,
}

impl SnapshotDraft {
    /// Seals the manifest and commits the session with the reference list of every
    /// chunk `sink` saw. `end_time_ns` overrides the end time (imports of old data).
    pub(crate) fn commit(
        self,
        vault: &OpenVault,
        session: &kura_store::SessionId,
        sink: ChunkSink,
        end_time_ns: Option<i64>,
    ) -> Result<SnapshotId> {
        let refs = ReferenceList::from_ids(sink.into_used());
        let body = ManifestBody {
            paths: self.paths,
            root: self.root,
        };
        let (body_id, body_blob) = body.seal(&vault.codec)?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            kind: self.kind,
            time_ns: self.time_ns,
            end_time_ns: end_time_ns.unwrap_or_else(now_ns),
            host: self.host,
            source: self.source,
            tags: self.tags,
            parent: self.parent,
            stats: self.stats,
            reference_count: refs.ids().len() as u64,
            references_hash: ByteBuf::from(refs.hash().to_vec()),
            body_id,
            body: ByteBuf::from(body_blob),
        };
        vault
            .handle
            .block_on(vault.repo.commit(session, manifest.encode(), refs.encode()))
    }
}

/// Runs a file backup. Call from a thread outside the async runtime.
pub fn run(
    vault: &OpenVault,
    options: &BackupOptions,
    progress: Arc<BackupProgress>,
) -> Result<BackupSummary> {
    let started = std::time::Instant::now();
    let time_ns = options.time_ns.unwrap_or_else(now_ns);
    let paths = absolute_paths(&options.paths)?;
    let source = options
        .source
        .clone()
        .unwrap_or_else(|| default_source(vault, &options.host, &paths));
    let excludes = ExcludeRules::new(&options.excludes, Path::new("/"))?;

    let (parent_id, parent_root) = if options.force_full {
        (None, None)
    } else {
        vault
            .handle
            .block_on(find_parent(vault, &source, SnapshotKind::Files))?
    };
    let session = vault.handle.block_on(vault.repo.open_session(parent_id))?;
    let sink = ChunkSink::new(vault.clone(), session.clone());

    let walked = walk::walk(
        vault,
        &sink,
        &paths,
        parent_root,
        &excludes,
        options.one_file_system,
        &progress,
    );
    let walked = match walked.and_then(|w| sink.flush().map(|_| w)) {
        Ok(w) => w,
        Err(e) => {
            let _ = vault.handle.block_on(vault.repo.abort_session(&session));
            return Err(e);
        }
    };

    let stats = SnapshotStats {
        files: walked.files,
        dirs: walked.dirs,
        bytes: walked.bytes,
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_added: sink.bytes_added(),
        chunks_added: sink.chunks_added(),
        errors: walked.errors.len() as u64,
    };
    let draft = SnapshotDraft {
        kind: SnapshotKind::Files,
        time_ns,
        host: options.host.clone(),
        source,
        tags: options.tags.clone(),
        parent: parent_id,
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        root: walked.root,
        stats,
    };
    let id = draft.commit(vault, &session, sink, options.time_ns)?;
    Ok(BackupSummary {
        snapshot_id: id.to_hex(),
        parent: parent_id.map(|p| p.to_hex()),
        files: stats.files,
        dirs: stats.dirs,
        bytes: stats.bytes,
        bytes_read: stats.bytes_read,
        bytes_added: stats.bytes_added,
        chunks_added: stats.chunks_added,
        duration_s: started.elapsed().as_secs_f64(),
        errors: walked.errors,
        changed_while_reading: walked.changed,
    })
}

fn absolute_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(AgentError::Usage(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| AgentError::io(p, e))?;
        // Normalise `.` and `..` lexically; the walk then uses real directories.
        let mut clean = PathBuf::from("/");
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                std::path::Component::Normal(n) => clean.push(n),
                _ => {}
            }
        }
        if let Err(e) = std::fs::symlink_metadata(&clean) {
            return Err(AgentError::Usage(format!("cannot back up {}: {e}", p.display())));
        }
        out.push(clean);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The newest undamaged snapshot of the same source and kind, and its root (tree or
/// image index).
pub(crate) async fn find_parent(
    vault: &OpenVault,
    source: &str,
    kind: SnapshotKind,
) -> Result<(Option<SnapshotId>, Option<kura_format::ChunkId>)> {
    let mut candidates: BTreeMap<i64, Vec<kura_store::SnapshotRecord>> = BTreeMap::new();
    for s in vault.repo.snapshots().await? {
        if s.manifest.kind == kind && s.manifest.source == source {
            candidates.entry(s.manifest.time_ns).or_default().push(s);
        }
    }
    for (_, snaps) in candidates.into_iter().rev() {
        for s in snaps {
            if vault.repo.is_damaged(&s.id).await? {
                continue;
            }
            let body = s.manifest.open_body(&vault.codec)?;
            return Ok((Some(s.id), Some(body.root)));
        }
    }
    Ok((None, None))
}
