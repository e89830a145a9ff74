//! Image backup: the image is cut into fixed-size chunks that worker threads read, test
//! for zeros, hash and hand to the chunk sink (which deduplicates, seals and uploads).
//! A chunk whose id equals the parent snapshot's chunk at the same place is recorded as
//! reused without asking the vault. Segments are finished in image order, so memory
//! holds one segment's ids at a time whatever the image size.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use kura_format::image::{ImageIndex, ImageSegment, SEGMENT_CHUNKS, SourceStamp};
use kura_format::manifest::SnapshotStats;
use kura_format::{BlobKind, ChunkId, SnapshotKind};

use super::source::{ImageInput, stamp_of};
use super::{cores, for_each_claimed, is_zero, load_index, load_segment};
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

    // Taken before reading: a file changed during the read gets a new ctime, so the next
    // backup reads it again.
    let stamp = stamp_of(&path)?;
    let unchanged = parent_index
        .as_ref()
        .is_some_and(|p| stamp.is_some() && p.source == stamp);
    let input = match unchanged {
        true => None,
        false => Some(ImageInput::open(&path)?),
    };
    let session = vault.handle.block_on(vault.repo.open_session(parent_id))?;
    let sink = ChunkSink::new(vault.clone(), session.clone());
    let filled = match (&input, parent_index) {
        (Some(input), parent) => {
            read_image(vault, input, chunk_size, stamp, parent.as_ref(), &sink, &progress)
        }
        (None, parent) => reuse_parent(vault, parent.expect("an unchanged image has a parent"), &sink),
    };
    let stored = filled.and_then(|index| {
        let bytes = index.encode();
        let id = vault.codec.id(&bytes);
        sink.submit(id, BlobKind::Tree, bytes)?;
        sink.flush()?;
        Ok((index, id))
    });
    let (index, index_id) = match stored {
        Ok(stored) => stored,
        Err(e) => {
            drop(sink);
            let _ = vault.handle.block_on(vault.repo.abort_session(&session));
            return Err(e);
        }
    };
    let stats = SnapshotStats {
        files: 0,
        dirs: 0,
        bytes: index.size,
        bytes_read: progress.bytes_read.load(Ordering::Relaxed),
        bytes_added: sink.bytes_added(),
        chunks_added: sink.chunks_added(),
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
fn reuse_parent(vault: &OpenVault, index: ImageIndex, sink: &ChunkSink) -> Result<ImageIndex> {
    for n in 0..index.segments.len() as u64 {
        let segment = vault.handle.block_on(load_segment(vault, &index, n))?;
        sink.reuse(segment.chunks.iter().flatten());
        sink.reuse(std::iter::once(&index.segments[n as usize]));
    }
    Ok(index)
}

/// Reads the whole image into `sink`; returns its index.
fn read_image(
    vault: &OpenVault,
    input: &ImageInput,
    chunk_size: u32,
    source: Option<SourceStamp>,
    parent: Option<&ImageIndex>,
    sink: &ChunkSink,
    progress: &BackupProgress,
) -> Result<ImageIndex> {
    let size = input.size();
    let mut index = ImageIndex {
        size,
        chunk_size,
        segment_chunks: SEGMENT_CHUNKS,
        segments: Vec::new(),
        source,
    };
    for n in 0..ImageIndex::segment_count(size, chunk_size, SEGMENT_CHUNKS) {
        let parent_segment = match parent {
            Some(p)
                if n < p.segments.len() as u64 && p.chunks_in_segment(n) == index.chunks_in_segment(n) =>
            {
                Some(vault.handle.block_on(load_segment(vault, p, n))?)
            }
            _ => None,
        };
        let segment = read_segment(vault, input, &index, n, parent_segment.as_ref(), sink, progress)?;
        let bytes = segment.encode();
        let id = vault.codec.id(&bytes);
        sink.submit(id, BlobKind::Tree, bytes)?;
        index.segments.push(id);
    }
    Ok(index)
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
    for_each_claimed(
        count,
        cores(),
        || vec![0u8; index.chunk_size as usize],
        |buf, i| {
            let range = index.chunk_range(first + i as u64);
            let reused = parent.and_then(|p| p.chunks[i]);
            let id = read_chunk(vault, input, range, buf, reused, sink, progress)?;
            chunks.lock().expect("chunks lock")[i] = id;
            Ok(())
        },
    )?;
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
