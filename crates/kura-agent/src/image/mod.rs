//! Image snapshots: whole disks, volumes and raw or qcow2 image files, cut into
//! fixed-size chunks ([`kura_format::image`]). Backup ([`backup`]), bit-identical restore
//! ([`restore`]) and random access to a snapshot's bytes without restoring it
//! ([`VaultImage`]), on which browsing and file-level restore from inside an image
//! ([`inside`]) are built.

pub mod backup;
pub mod inside;
mod random_access;
pub mod restore;
mod source;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kura_format::image::{ImageIndex, ImageSegment};
use kura_format::{ChunkId, SnapshotId, SnapshotKind};

pub use random_access::VaultImage;

use crate::{AgentError, OpenVault, Result};

/// Runs `work` for every index in `0..count` on `workers` threads, each claiming the next
/// index and keeping its own scratch state from `scratch`. Stops at the first error and
/// returns it.
pub(crate) fn for_each_claimed<S>(
    count: usize,
    workers: usize,
    scratch: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<AgentError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut state = scratch();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || failed.lock().expect("failure lock").is_some() {
                        break;
                    }
                    if let Err(e) = work(&mut state, i) {
                        failed.lock().expect("failure lock").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().expect("failure lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Worker threads for image work: one per core.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Whether every byte of `data` is zero; compares 64-byte blocks so it vectorises.
pub(crate) fn is_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    blocks.all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0) && blocks.remainder().iter().all(|&b| b == 0)
}

/// Reads and decodes the image index `id`.
pub(crate) async fn load_index(vault: &OpenVault, id: &ChunkId) -> Result<ImageIndex> {
    let bytes = vault.read_plain(id).await?;
    Ok(ImageIndex::decode(&bytes)?)
}

/// Reads and decodes segment `n` of `index`.
pub(crate) async fn load_segment(vault: &OpenVault, index: &ImageIndex, n: u64) -> Result<ImageSegment> {
    let id = index
        .segments
        .get(n as usize)
        .ok_or_else(|| AgentError::Unsafe(format!("image index has no segment {n}")))?;
    let bytes = vault.read_plain(id).await?;
    Ok(ImageSegment::decode(&bytes, index.chunks_in_segment(n))?)
}

/// The image index of snapshot `id`, refusing snapshots of files.
pub async fn index_of(vault: &OpenVault, id: &SnapshotId) -> Result<ImageIndex> {
    let manifest = vault.repo.manifest(id).await?;
    if manifest.kind != SnapshotKind::Image {
        return Err(AgentError::Usage(format!(
            "snapshot {} holds files, not an image",
            id.short()
        )));
    }
    let root = manifest.open_body(&vault.codec)?.root;
    load_index(vault, &root).await
}

/// A byte range of an image that cannot be restored as it was backed up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DamagedRange {
    pub start: u64,
    pub end: u64,
    /// `data` (stored chunks are damaged), `index` (the ids of this range are lost) or
    /// `image index` (the whole image).
    pub cause: &'static str,
}

/// The byte ranges of image snapshot `id` that depend on any of the `damaged` chunks,
/// merged where adjacent.
pub async fn damaged_ranges(
    vault: &OpenVault,
    id: &SnapshotId,
    damaged: &std::collections::HashSet<ChunkId>,
) -> Result<Vec<DamagedRange>> {
    let manifest = vault.repo.manifest(id).await?;
    let root = manifest.open_body(&vault.codec)?.root;
    let whole = |cause| {
        vec![DamagedRange {
            start: 0,
            end: manifest.stats.bytes,
            cause,
        }]
    };
    if damaged.contains(&root) {
        return Ok(whole("image index"));
    }
    let Ok(index) = load_index(vault, &root).await else {
        return Ok(whole("image index"));
    };
    let mut out: Vec<DamagedRange> = Vec::new();
    let mut push = |range, cause| push_range(&mut out, range, cause);
    for (n, segment_id) in index.segments.iter().enumerate() {
        let n = n as u64;
        let first = n * u64::from(index.segment_chunks);
        let segment = match damaged.contains(segment_id) {
            false => load_segment(vault, &index, n).await.ok(),
            true => None,
        };
        let Some(segment) = segment else {
            let last = first + u64::from(index.chunks_in_segment(n)) - 1;
            push(
                index.chunk_range(first).start..index.chunk_range(last).end,
                "index",
            );
            continue;
        };
        for (i, c) in segment.chunks.iter().enumerate() {
            if c.is_some_and(|c| damaged.contains(&c)) {
                push(index.chunk_range(first + i as u64), "data");
            }
        }
    }
    Ok(out)
}

/// Appends a damaged range, merged with the last one when they touch and share a cause.
pub(crate) fn push_range(out: &mut Vec<DamagedRange>, range: std::ops::Range<u64>, cause: &'static str) {
    match out.last_mut() {
        Some(last) if last.end == range.start && last.cause == cause => last.end = range.end,
        _ => out.push(DamagedRange {
            start: range.start,
            end: range.end,
            cause,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_sees_a_single_byte() {
        let mut data = vec![0u8; 256 * 1024 + 3];
        assert!(is_zero(&data));
        for at in [0, 63, 64, 1000, data.len() - 1] {
            data[at] = 1;
            assert!(!is_zero(&data), "byte {at}");
            data[at] = 0;
        }
    }
}
