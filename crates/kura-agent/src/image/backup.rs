//! Image backup: the image is cut into fixed-size chunks that worker threads read, test
//! for zeros, hash and hand to the chunk sink (which deduplicates, seals and uploads).
//! A chunk whose id equals the parent snapshot's chunk at the same place is recorded as
//! reused without asking the vault. Segments are finished in image order, so memory
//! holds one segment's ids at a time whatever the image size.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kura_format::image::{ImageIndex, ImageSegment, SEGMENT_CHUNKS};
use kura_format::manifest::SnapshotStats;
use kura_format::{BlobKind, ChunkId, SnapshotKind};

use super::source::{ImageInput, stamp_of};
use super::{is_zero, load_index, load_segment};
use crate::backup::{BackupProgress, BackupSummary, ChunkSink, SnapshotDraft, find_parent};
use crate::{AgentError, OpenVault, Result, now_ns};

/// What to back up and how.
#[derive(Clone, Debug, Default)]
pub struct ImageBackupOptions {
    /// A raw image file, a qcow2 file or a block device.
    pub path: PathBuf,
    pub tags: Vec<String>,
    /// Name of the source; defaults to `host:image:path`.
    pub source: Option<String>,
    /// Host name recorded in the manifest.
    pub host: String,
    /// Read every chunk's vault status afresh, ignoring the parent snapshot.
    pub force_full: bool,
}

/// The default source name: `host:image:path`, or a keyed digest of the path in an
/// encrypted vault (see [`crate::backup::default_source`]).
fn default_source(vault: &OpenVault, host: &str, path: &std::path::Path) -> String {
    let files = crate::backup::default_source(vault, host, std::slice::from_ref(&path.to_path_buf()));
    files.replacen(':', ":image:", 1)
}

/// Backs up an image. Call from a thread outside the async runtime.
pub fn run(
    vault: &OpenVault,
    options: &ImageBackupOptions,
    progress: Arc<BackupProgress>,
) -> Result<BackupSummary> {
    let started = std::time::Instant::now();
    let time_ns = now_ns();
    let path = std::path::absolute(&options.path).map_err(|e| AgentError::io(&options.path, e))?;
    let source = options
        .source
        .clone()
        .unwrap_or_else(|| default_source(vault, &options.host, &path));
    let chunk_size = vault.config().image_chunk_size;

    let (parent_id, parent_index) = if options.force_full {
        (None, None)
    } else {
        let (id, root) = vault
            .handle
            .block_on(find_parent(vault, &source, SnapshotKind::Image))?;
        let index = match root {
            Some(root) => Some(vault.handle.block_on(load_index(vault, &root))?),
            None => None,
        };
        (
            id,
            index.filter(|i| i.chunk_size == chunk_size && i.segment_chunks == SEGMENT_CHUNKS),
        )
    };

    let unchanged = match (&parent_index, stamp_of(&path)?) {
        (Some(parent), Some(now)) => parent.source == Some(now),
        _ => false,
    };
    let (session, sink, index) = if unchanged {
        reuse_parent(
            vault,
            parent_id,
            parent_index.expect("an unchanged image has a parent"),
        )?
    } else {
        read_image(
            vault,
            &path,
            chunk_size,
            parent_id,
            parent_index.as_ref(),
            &progress,
        )?
    };

    let index_bytes = index.encode();
    let index_id = vault.codec.id(&index_bytes);
    let stored = sink
        .submit(index_id, BlobKind::Tree, index_bytes)
        .and_then(|_| sink.flush());
    if let Err(e) = stored {
        let _ = vault.handle.block_on(vault.repo.abort_session(&session));
        return Err(e);
    }
    let stats = SnapshotStats {
        files: 0,
        dirs: 0,
        bytes: index.size,
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_added: sink.bytes_added(),
        chunks_added: sink.chunks_added.load(Ordering::Relaxed),
        errors: 0,
    };
    let draft = SnapshotDraft {
        kind: SnapshotKind::Image,
        time_ns,
        host: options.host.clone(),
        source,
        tags: options.tags.clone(),
        parent: parent_id,
        paths: vec![path.display().to_string()],
        root: index_id,
        stats,
    };
    let id = draft.commit(vault, &session, sink, None)?;
    Ok(BackupSummary {
        snapshot_id: id.to_hex(),
        parent: parent_id.map(|p| p.to_hex()),
        files: 0,
        dirs: 0,
        bytes: stats.bytes,
        bytes_read: stats.bytes_read,
        bytes_added: stats.bytes_added,
        chunks_added: stats.chunks_added,
        duration_s: started.elapsed().as_secs_f64(),
        errors: Vec::new(),
        changed_while_reading: Vec::new(),
    })
}

/// An image file unchanged since its parent snapshot (same size, times, device and inode,
/// as for unchanged files in a tree) is not read: the parent's index is the new one, and
/// every chunk it names is recorded as used.
fn reuse_parent(
    vault: &OpenVault,
    parent_id: Option<kura_format::SnapshotId>,
    index: ImageIndex,
) -> Result<(kura_store::SessionId, ChunkSink, ImageIndex)> {
    let session = vault.handle.block_on(vault.repo.open_session(parent_id))?;
    let sink = ChunkSink::new(vault.clone(), session.clone());
    let reused = (0..index.segments.len() as u64).try_for_each(|n| {
        let segment = vault.handle.block_on(load_segment(vault, &index, n))?;
        sink.reuse(segment.chunks.iter().flatten());
        sink.reuse(std::iter::once(&index.segments[n as usize]));
        Ok(())
    });
    match reused {
        Ok(()) => Ok((session, sink, index)),
        Err(e) => {
            drop(sink);
            let _ = vault.handle.block_on(vault.repo.abort_session(&session));
            Err(e)
        }
    }
}

/// Reads the whole image into an open session; returns the session, the sink holding
/// what is still to be flushed, and the image index.
fn read_image(
    vault: &OpenVault,
    path: &std::path::Path,
    chunk_size: u32,
    parent_id: Option<kura_format::SnapshotId>,
    parent: Option<&ImageIndex>,
    progress: &BackupProgress,
) -> Result<(kura_store::SessionId, ChunkSink, ImageIndex)> {
    let input = ImageInput::open(path)?;
    let size = input.size();
    let session = vault.handle.block_on(vault.repo.open_session(parent_id))?;
    let sink = ChunkSink::new(vault.clone(), session.clone());
    let mut index = ImageIndex {
        size,
        chunk_size,
        segment_chunks: SEGMENT_CHUNKS,
        segments: Vec::new(),
        source: input.stamp(),
    };
    let segments = ImageIndex::segment_count(size, chunk_size, SEGMENT_CHUNKS);
    let result = (0..segments).try_for_each(|n| {
        let parent_segment = match parent {
            Some(p)
                if n < p.segments.len() as u64 && p.chunks_in_segment(n) == index.chunks_in_segment(n) =>
            {
                Some(vault.handle.block_on(load_segment(vault, p, n))?)
            }
            _ => None,
        };
        let segment = read_segment(vault, &input, &index, n, parent_segment.as_ref(), &sink, progress)?;
        let bytes = segment.encode();
        let id = vault.codec.id(&bytes);
        sink.submit(id, BlobKind::Tree, bytes)?;
        index.segments.push(id);
        Ok(())
    });
    match result {
        Ok(()) => Ok((session, sink, index)),
        Err(e) => {
            drop(sink);
            let _ = vault.handle.block_on(vault.repo.abort_session(&session));
            Err(e)
        }
    }
}

/// Reads segment `n` with one worker per core, each claiming the next chunk.
fn read_segment(
    vault: &OpenVault,
    input: &ImageInput,
    index: &ImageIndex,
    n: u64,
    parent: Option<&ImageSegment>,
    sink: &ChunkSink,
    progress: &BackupProgress,
) -> Result<ImageSegment> {
    let count = index.chunks_in_segment(n) as usize;
    let first = n * u64::from(index.segment_chunks);
    let chunks = Mutex::new(vec![None; count]);
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<AgentError>> = Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; index.chunk_size as usize];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || failed.lock().expect("failure lock").is_some() {
                        break;
                    }
                    let range = index.chunk_range(first + i as u64);
                    let reused = parent.and_then(|p| p.chunks[i]);
                    match read_chunk(vault, input, range, &mut buf, reused, sink, progress) {
                        Ok(id) => chunks.lock().expect("chunks lock")[i] = id,
                        Err(e) => {
                            failed.lock().expect("failure lock").get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("failure lock") {
        return Err(e);
    }
    Ok(ImageSegment {
        chunks: chunks.into_inner().expect("chunks lock"),
    })
}

/// Reads one chunk; `None` when it is all zeros (never stored).
fn read_chunk(
    vault: &OpenVault,
    input: &ImageInput,
    range: std::ops::Range<u64>,
    buf: &mut [u8],
    parent_id: Option<ChunkId>,
    sink: &ChunkSink,
    progress: &BackupProgress,
) -> Result<Option<ChunkId>> {
    let len = (range.end - range.start) as usize;
    if input.is_hole(&range) {
        progress.bytes_skipped.fetch_add(len as u64, Ordering::Relaxed);
        return Ok(None);
    }
    let data = &mut buf[..len];
    input.read_at(range.start, data)?;
    progress.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
    if is_zero(data) {
        return Ok(None);
    }
    let id = vault.codec.id(data);
    if parent_id == Some(id) {
        sink.reuse(std::iter::once(&id));
    } else {
        sink.submit(id, BlobKind::Data, data.to_vec())?;
    }
    Ok(Some(id))
}
