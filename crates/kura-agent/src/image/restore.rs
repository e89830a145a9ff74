//! Image restore: writes a bit-identical image to a new file, an existing file
//! (`--overwrite`) or a block device, or a qcow2 file through `qemu-img`. Zero chunks
//! are left as holes in files (the result is sparse where the source was zero) and
//! written as zeros on devices, whose old contents would otherwise show through. A device
//! smaller than the image is refused before anything is written.
//!
//! Damage in the vault costs only the bytes it touches: a chunk or a segment of the index
//! that cannot be read leaves its byte range zero (written as zeros on a device), the
//! rest of the image is written, and the ranges are named in the summary.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kura_format::image::ImageIndex;
use kura_format::{ChunkId, SnapshotId};

use super::source::run_qemu_img;
use super::{DamagedRange, cores, for_each_claimed, index_of, load_segment, push_range};
use crate::restore::RestoreProgress;
use crate::{AgentError, OpenVault, Result};

/// Chunks fetched per request.
const READ_BATCH: usize = 32;

/// The file format to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    #[default]
    Raw,
    Qcow2,
}

/// Where and how to restore an image.
#[derive(Clone, Debug, Default)]
pub struct ImageRestoreOptions {
    /// A file (created, or replaced with `overwrite`) or a block device.
    pub target: PathBuf,
    pub overwrite: bool,
    pub format: ImageFormat,
}

/// What an image restore did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageRestoreSummary {
    pub snapshot_id: String,
    pub target: String,
    pub format: ImageFormat,
    /// The image's size.
    pub bytes: u64,
    /// Bytes of stored chunks written (zero ranges are not counted).
    pub bytes_written: u64,
    pub duration_s: f64,
    /// Byte ranges of the image that could not be read from the vault and were left zero.
    pub damaged: Vec<DamagedRange>,
}

/// Restores image snapshot `id`. Call from a thread outside the async runtime.
pub fn run(
    vault: &OpenVault,
    id: &SnapshotId,
    options: &ImageRestoreOptions,
    progress: Arc<RestoreProgress>,
) -> Result<ImageRestoreSummary> {
    let started = std::time::Instant::now();
    let index = vault.handle.block_on(index_of(vault, id))?;
    let target = &options.target;
    let damaged = match options.format {
        ImageFormat::Raw => {
            let out = open_target(target, index.size, options.overwrite)?;
            let damaged = write_image(vault, &index, &out, &progress)?;
            if let Some(file) = out.file.as_ref().filter(|_| out.zero_fill) {
                file.sync_all().map_err(|e| AgentError::io(target, e))?;
            }
            damaged
        }
        ImageFormat::Qcow2 => {
            if std::fs::symlink_metadata(target).is_ok() && !options.overwrite {
                return Err(exists_error(target));
            }
            let dir = target
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let raw = tempfile::Builder::new()
                .prefix(".kura-restore-")
                .suffix(".raw")
                .tempfile_in(dir)
                .map_err(|e| AgentError::io(dir, e))?;
            raw.as_file()
                .set_len(index.size)
                .map_err(|e| AgentError::io(raw.path(), e))?;
            let out = Target {
                file: Some(raw.reopen().map_err(|e| AgentError::io(raw.path(), e))?),
                zero_fill: false,
            };
            let damaged = write_image(vault, &index, &out, &progress)?;
            run_qemu_img(&[
                "convert".as_ref(),
                "-f".as_ref(),
                "raw".as_ref(),
                "-O".as_ref(),
                "qcow2".as_ref(),
                raw.path().as_os_str(),
                target.as_os_str(),
            ])?;
            damaged
        }
    };
    Ok(ImageRestoreSummary {
        target: target.display().to_string(),
        format: options.format,
        ..summary(id, &index, &progress, started, damaged)
    })
}

fn summary(
    id: &SnapshotId,
    index: &ImageIndex,
    progress: &RestoreProgress,
    started: std::time::Instant,
    damaged: Vec<DamagedRange>,
) -> ImageRestoreSummary {
    ImageRestoreSummary {
        snapshot_id: id.to_hex(),
        target: String::new(),
        format: ImageFormat::Raw,
        bytes: index.size,
        bytes_written: progress.bytes.load(Ordering::Relaxed),
        duration_s: started.elapsed().as_secs_f64(),
        damaged,
    }
}

/// Reads image snapshot `id` through the restore path without writing it anywhere (a
/// restore drill): every chunk is fetched, decoded and checked against its id and its
/// place in the image as a restore would; what cannot be is in `damaged`.
pub fn read_through(
    vault: &OpenVault,
    id: &SnapshotId,
    progress: Arc<RestoreProgress>,
) -> Result<ImageRestoreSummary> {
    let started = std::time::Instant::now();
    let index = vault.handle.block_on(index_of(vault, id))?;
    let out = Target {
        file: None,
        zero_fill: false,
    };
    let damaged = write_image(vault, &index, &out, &progress)?;
    Ok(summary(id, &index, &progress, started, damaged))
}

struct Target {
    /// `None`: a drill that reads without writing.
    file: Option<File>,
    /// A device: zero chunks must be written, not skipped.
    zero_fill: bool,
}

fn exists_error(target: &Path) -> AgentError {
    AgentError::Usage(format!(
        "{} exists; add --overwrite to replace it",
        target.display()
    ))
}

/// Opens the target, checking before anything is written that an image of `size` fits.
fn open_target(target: &Path, size: u64, overwrite: bool) -> Result<Target> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_block_device() => {
            let mut file = OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| AgentError::io(target, e))?;
            let capacity = file
                .seek(SeekFrom::End(0))
                .map_err(|e| AgentError::io(target, e))?;
            if capacity < size {
                return Err(AgentError::Usage(format!(
                    "{} holds {capacity} bytes but the image is {size} bytes; nothing was written",
                    target.display()
                )));
            }
            if !overwrite {
                return Err(AgentError::Usage(format!(
                    "{} is a device; add --overwrite to write the image over its contents",
                    target.display()
                )));
            }
            Ok(Target {
                file: Some(file),
                zero_fill: true,
            })
        }
        Ok(meta) if !meta.file_type().is_file() => Err(AgentError::Usage(format!(
            "{} is neither a file nor a block device",
            target.display()
        ))),
        Ok(_) if !overwrite => Err(exists_error(target)),
        // An existing file is emptied (old bytes must not show through the holes); a new
        // one is created only if nothing appeared under its name meanwhile.
        found => {
            let file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .create_new(found.is_err())
                .open(target)
                .map_err(|e| AgentError::io(target, e))?;
            file.set_len(size).map_err(|e| AgentError::io(target, e))?;
            Ok(Target {
                file: Some(file),
                zero_fill: false,
            })
        }
    }
}

/// Writes every chunk of the image, one segment at a time. Returns the ranges that could
/// not be read, merged and in order.
fn write_image(
    vault: &OpenVault,
    index: &ImageIndex,
    out: &Target,
    progress: &RestoreProgress,
) -> Result<Vec<DamagedRange>> {
    let mut damaged = Vec::new();
    for n in 0..index.segments.len() as u64 {
        let first = n * u64::from(index.segment_chunks);
        let segment = match vault.handle.block_on(load_segment(vault, index, n)) {
            Ok(segment) => segment,
            Err(e) if e.is_damage() => {
                let last = first + u64::from(index.chunks_in_segment(n)) - 1;
                let lost = DamagedRange {
                    start: index.chunk_range(first).start,
                    end: index.chunk_range(last).end,
                    cause: "index",
                };
                out.zero(lost.start..lost.end)?;
                damaged.push(lost);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut stored: Vec<(u64, ChunkId)> = Vec::new();
        for (i, c) in segment.chunks.iter().enumerate() {
            let chunk = first + i as u64;
            match c {
                Some(id) => stored.push((chunk, *id)),
                None => {
                    out.zero(index.chunk_range(chunk))?;
                }
            }
        }
        damaged.extend(write_chunks(vault, index, out, &stored, progress)?);
    }
    damaged.sort_by_key(|d| d.start);
    let mut merged = Vec::new();
    for d in damaged {
        push_range(&mut merged, d.start..d.end, d.cause);
    }
    Ok(merged)
}

impl Target {
    /// Zeros a range of a device, whose old contents would otherwise show through; a file
    /// target is already zero (a hole) there.
    fn zero(&self, range: std::ops::Range<u64>) -> Result<()> {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let Some(file) = self.file.as_ref().filter(|_| self.zero_fill) else {
            return Ok(());
        };
        let mut at = range.start;
        while at < range.end {
            let len = (range.end - at).min(ZEROS.len() as u64) as usize;
            file.write_all_at(&ZEROS[..len], at)
                .map_err(|e| AgentError::io("restore target", e))?;
            at += len as u64;
        }
        Ok(())
    }
}

/// Decoded chunks of one batch with their image offsets, on their way to the writer, and
/// the ranges of its chunks that could not be read.
type Decoded = (Vec<(u64, Vec<u8>)>, Vec<DamagedRange>);

/// Fetches and decodes `stored` on one thread per core and writes it from this one:
/// buffered writes to one file serialise on its inode lock anyway, so decoders that wrote
/// themselves would queue (and spin) there instead of decoding.
fn write_chunks(
    vault: &OpenVault,
    index: &ImageIndex,
    out: &Target,
    stored: &[(u64, ChunkId)],
    progress: &RestoreProgress,
) -> Result<Vec<DamagedRange>> {
    let batches: Vec<&[(u64, ChunkId)]> = stored.chunks(READ_BATCH).collect();
    let decoders = cores();
    // One batch per decoder queued: the writer has the next while a decoder works.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(decoders);
    std::thread::scope(|s| {
        let decoding = s.spawn(move || {
            for_each_claimed(
                batches.len(),
                decoders,
                || tx.clone(),
                |tx, b| {
                    let decoded = decode_batch(vault, index, batches[b])?;
                    // A closed channel means the writer failed; its error is the one reported.
                    tx.send(decoded)
                        .map_err(|_| AgentError::Aborted("the image writer stopped".into()))
                },
            )
        });
        let mut damaged = Vec::new();
        let written = rx.iter().try_for_each(|(chunks, lost)| {
            for (offset, data) in chunks {
                if let Some(file) = &out.file {
                    file.write_all_at(&data, offset)
                        .map_err(|e| AgentError::io("restore target", e))?;
                }
                progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            for range in &lost {
                out.zero(range.start..range.end)?;
            }
            damaged.extend(lost);
            Ok(())
        });
        // Dropping the receiver stops the decoders at their next send.
        drop(rx);
        let decoded = decoding.join().expect("decoder threads do not panic");
        written.and(decoded).map(|()| damaged)
    })
}

fn decode_batch(vault: &OpenVault, index: &ImageIndex, batch: &[(u64, ChunkId)]) -> Result<Decoded> {
    let ids: Vec<ChunkId> = batch.iter().map(|(_, id)| *id).collect();
    let read = |ids: &[ChunkId]| vault.handle.block_on(vault.repo.read_blobs(ids));
    let blobs: Vec<Result<bytes::Bytes>> = match read(&ids) {
        Ok(blobs) => blobs.into_iter().map(Ok).collect(),
        // One lost chunk fails its whole read: read the batch chunk by chunk instead.
        Err(e) if e.is_damage() => ids
            .iter()
            .map(|id| read(std::slice::from_ref(id)).map(|mut b| b.remove(0)))
            .collect(),
        Err(e) => return Err(e),
    };
    let mut decoded = Vec::with_capacity(batch.len());
    let mut damaged = Vec::new();
    for ((chunk, id), blob) in batch.iter().zip(blobs) {
        let range = index.chunk_range(*chunk);
        let data = match blob.and_then(|blob| Ok(vault.codec.open(id, &blob)?)) {
            Ok(data) => data,
            Err(e) if e.is_damage() => {
                damaged.push(DamagedRange {
                    start: range.start,
                    end: range.end,
                    cause: "data",
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        if data.len() as u64 != range.end - range.start {
            return Err(AgentError::Unsafe(format!(
                "chunk {} of the image holds {} bytes where {} belong",
                chunk,
                data.len(),
                range.end - range.start
            )));
        }
        decoded.push((range.start, data));
    }
    Ok((decoded, damaged))
}
