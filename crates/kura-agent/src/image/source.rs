//! What an image backup reads: a raw image file or a block device, or a qcow2 file
//! converted to a sparse raw file by `qemu-img` first. Holes of sparse files are found
//! with SEEK_DATA, so they are never read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kura_format::image::SourceStamp;

use crate::{AgentError, Result};

/// The first bytes of a qcow2 file.
const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// An image opened for reading.
pub(crate) struct ImageInput {
    file: File,
    path: PathBuf,
    size: u64,
    /// SEEK_DATA works here (regular files); block devices are read whole.
    seekable_holes: bool,
    /// The raw file converted from qcow2, removed when the input is dropped.
    converted: Option<tempfile::TempPath>,
}

/// The identity of the image file at `path` now; `None` for block devices, whose
/// contents change without their metadata doing so.
pub(crate) fn stamp_of(path: &Path) -> Result<Option<SourceStamp>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| AgentError::io(path, e))?;
    Ok(m.file_type().is_file().then(|| SourceStamp {
        size: m.size(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        device: m.dev(),
        inode: m.ino(),
    }))
}

impl ImageInput {
    /// Opens `path`; a qcow2 image is converted to raw in the temporary directory
    /// (`TMPDIR`), where it takes only the space of its allocated blocks.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| AgentError::io(path, e))?;
        let ft = meta.file_type();
        if !ft.is_file() && !ft.is_block_device() {
            return Err(AgentError::Usage(format!(
                "{}: not a block device or an image file (use `kura backup PATH` for files and directories)",
                path.display()
            )));
        }
        let mut file = File::open(path).map_err(|e| AgentError::io(path, e))?;
        if ft.is_file() && is_qcow2(&mut file, path)? {
            return Self::from_qcow2(path);
        }
        let size = file.seek(SeekFrom::End(0)).map_err(|e| AgentError::io(path, e))?;
        advise_sequential(&file);
        Ok(ImageInput {
            file,
            path: path.to_path_buf(),
            size,
            seekable_holes: ft.is_file(),
            converted: None,
        })
    }

    fn from_qcow2(path: &Path) -> Result<Self> {
        let raw = tempfile::Builder::new()
            .prefix("kura-qcow2-")
            .suffix(".raw")
            .tempfile()
            .map_err(|e| AgentError::io(std::env::temp_dir(), e))?
            .into_temp_path();
        run_qemu_img(&[
            "convert".as_ref(),
            "-O".as_ref(),
            "raw".as_ref(),
            path.as_os_str(),
            raw.as_os_str(),
        ])?;
        let mut input = Self::open(&raw)?;
        input.path = path.to_path_buf();
        input.converted = Some(raw);
        Ok(input)
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether `range` lies wholly in a hole of a sparse file (reads as zeros).
    pub(crate) fn is_hole(&self, range: &Range<u64>) -> bool {
        if !self.seekable_holes {
            return false;
        }
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(range.start)) {
            Ok(next_data) => next_data >= range.end,
            // ENXIO: no data at or after the offset.
            Err(rustix::io::Errno::NXIO) => true,
            Err(_) => false,
        }
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::other("the image shrank while it was being read")
            } else {
                e
            };
            AgentError::io(&self.path, e)
        })
    }
}

impl Drop for ImageInput {
    fn drop(&mut self) {
        if let Some(raw) = self.converted.take() {
            let _ = raw.close();
        }
    }
}

fn is_qcow2(file: &mut File, path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| AgentError::io(path, e))?;
    Ok(n == 4 && &magic == QCOW2_MAGIC)
}

/// Tells the kernel to read ahead aggressively; a hint, so failure does not matter.
fn advise_sequential(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
}

/// Runs `qemu-img` with `args`, turning a missing binary or a failure into a clear error.
pub(crate) fn run_qemu_img(args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Command::new("qemu-img").args(args).output().map_err(|e| {
        AgentError::Usage(format!(
            "qcow2 images need qemu-img, which could not be run ({e}); install qemu-utils"
        ))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AgentError::Usage(format!(
            "qemu-img failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
