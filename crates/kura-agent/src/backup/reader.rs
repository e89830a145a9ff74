//! Reading one file into chunks: data regions found with SEEK_DATA/SEEK_HOLE (holes are
//! recorded, never read), each cut by the content-defined chunker.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kura_format::tree::Extent;
use kura_format::{BlobKind, FileChunker};

use super::sink::ChunkSink;
use crate::{AgentError, OpenVault, Result};

/// Why a file could not be taken into the snapshot (it is left out and reported).
pub(crate) type Unreadable = String;

/// What reading a file gave.
pub(crate) struct FileContent {
    pub extents: Vec<Extent>,
    /// Set when size or times changed while the file was read.
    pub changed: bool,
}

/// Reads `path`, submits its chunks to `sink` and returns its extents. `Ok(Err(..))` means
/// the file could not be read; `Err(..)` is a failure of the backup itself.
pub(crate) fn read_file(
    vault: &OpenVault,
    sink: &ChunkSink,
    path: &Path,
    on_bytes: &dyn Fn(u64),
) -> Result<std::result::Result<FileContent, Unreadable>> {
    let mut file = match open_noatime(path) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let before = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let size = before.len();
    // Only look for holes when the file occupies less space than its length.
    let sparse = before.blocks() * 512 < size;
    let regions = if sparse {
        data_regions(&file, size)
    } else {
        vec![(0, size)]
    };
    let mut extents = Vec::new();
    let mut pos = 0u64;
    let mut bytes_read = 0u64;
    for (start, end) in regions {
        if start > pos {
            extents.push(Extent::Hole(start - pos));
        }
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            return Ok(Err(e.to_string()));
        }
        let region = (&mut file).take(end - start);
        let chunked = WINDOW.with_borrow_mut(|buf| {
            chunk_stream(
                region,
                end - start,
                &vault.chunker,
                vault,
                sink,
                &mut extents,
                buf,
                on_bytes,
            )
        })?;
        match chunked {
            Ok(n) => {
                bytes_read += n;
                pos = start + n;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    if size > pos {
        extents.push(Extent::Hole(size - pos));
    }
    let changed = match file.metadata() {
        Ok(after) => {
            after.len() != size
                || after.mtime_nsec() != before.mtime_nsec()
                || after.mtime() != before.mtime()
                || bytes_read + holes(&extents) != size
        }
        Err(_) => true,
    };
    Ok(Ok(FileContent { extents, changed }))
}

fn holes(extents: &[Extent]) -> u64 {
    extents
        .iter()
        .map(|e| match e {
            Extent::Hole(n) => *n,
            Extent::Chunk(_) => 0,
        })
        .sum()
}

/// Data regions of a sparse file as (start, end) byte offsets.
fn data_regions(file: &File, size: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{SeekFrom as RxSeek, seek};
    let mut regions = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(file, RxSeek::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data after pos. Any other error: fall back to reading everything.
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        let end = seek(file, RxSeek::Hole(start)).unwrap_or(size).min(size);
        if end > start {
            regions.push((start, end));
        }
        pos = end.max(start + 1);
    }
    regions
}

thread_local! {
    /// Each reader thread's window, allocated once: zeroing a fresh window per file
    /// cost more than hashing the data.
    static WINDOW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Chunks a byte stream of `len` bytes; returns the bytes read, or why reading failed.
#[allow(clippy::too_many_arguments)]
fn chunk_stream(
    mut input: impl Read,
    len: u64,
    chunker: &FileChunker,
    vault: &OpenVault,
    sink: &ChunkSink,
    extents: &mut Vec<Extent>,
    buf: &mut Vec<u8>,
    on_bytes: &dyn Fn(u64),
) -> Result<std::result::Result<u64, Unreadable>> {
    let max = chunker.params().max_size as usize;
    let min = chunker.params().min_size as usize;
    if len <= min as u64 {
        // A small file is one chunk: read it straight into its own buffer.
        let mut data = Vec::with_capacity(len as usize);
        if let Err(e) = input.read_to_end(&mut data) {
            return Ok(Err(e.to_string()));
        }
        on_bytes(data.len() as u64);
        let n = data.len() as u64;
        if !data.is_empty() {
            let id = vault.codec.id(&data);
            extents.push(Extent::Chunk(id));
            sink.submit(id, BlobKind::Data, data)?;
        }
        return Ok(Ok(n));
    }
    let window = 4 * max;
    if buf.len() < window {
        buf.resize(window, 0);
    }
    let mut filled = 0usize;
    let mut start = 0usize;
    let mut total = 0u64;
    let mut eof = false;
    loop {
        // Refill until a whole max-size chunk fits, or the stream ends.
        while !eof && filled - start < max {
            if start > 0 {
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
            }
            match input.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    filled += n;
                    total += n as u64;
                    on_bytes(n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        if start == filled {
            return Ok(Ok(total));
        }
        let n = chunker.next_cut(&buf[start..filled]);
        let data = buf[start..start + n].to_vec();
        start += n;
        let id = vault.codec.id(&data);
        extents.push(Extent::Chunk(id));
        sink.submit(id, BlobKind::Data, data)?;
    }
}

/// Reads a symlink's target.
pub(crate) fn link_target(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::read_link(path)
        .map(|t| t.as_os_str().as_bytes().to_vec())
        .map_err(|e| AgentError::io(path, e))
}

/// Opens for reading without touching the access time, so a backup leaves the atime it
/// records unchanged (and the next backup's trees the same). Only the owner (or root) may
/// ask for that; anyone else gets a plain open.
pub(crate) fn open_noatime(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(noatime)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => File::open(path),
        other => other,
    }
}
