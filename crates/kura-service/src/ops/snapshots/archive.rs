//! The archive a folder is downloaded as: a `.tar` ([`super::tar`]) or a `.zip`
//! ([`super::zip`]), written as the folder is walked. [`Archive`] gives both one shape —
//! an entry's start, a file's content sent by the caller, the file's end, the archive's
//! end — so that the walks of file snapshots and of image partitions do not care which.

use jiff::tz::TimeZone;

use super::tar;
use super::zip::ZipWriter;
use crate::{ServiceError, ServiceResult};

/// The format of a folder's download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    #[default]
    Tar,
    Zip,
}

impl ArchiveFormat {
    /// `tar` (also when absent) or `zip`.
    pub fn from_request(format: Option<&str>) -> ServiceResult<Self> {
        match format.unwrap_or("") {
            "" | "tar" => Ok(ArchiveFormat::Tar),
            "zip" => Ok(ArchiveFormat::Zip),
            other => Err(ServiceError::invalid(format!(
                "format {other:?} is not one this service writes: use tar or zip"
            ))),
        }
    }

    /// The file name extension, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => ".tar",
            ArchiveFormat::Zip => ".zip",
        }
    }
}

/// What one archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind<'a> {
    /// A regular file of this many bytes; its content follows the header.
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: &'a [u8],
    },
}

/// One archive entry's metadata.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveEntry<'a> {
    /// Relative path inside the archive (no leading `/`; directories without a trailing
    /// one, which the writers add).
    pub path: &'a [u8],
    pub kind: ArchiveKind<'a>,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
}

/// An archive being written.
pub enum Archive {
    /// The size of the file whose content is being sent, for its padding.
    Tar {
        file_size: u64,
    },
    Zip(ZipWriter),
}

impl Archive {
    /// A new archive; `zone` (the tenant's) sets a zip's local times.
    pub fn new(format: ArchiveFormat, zone: TimeZone) -> Self {
        match format {
            ArchiveFormat::Tar => Archive::Tar { file_size: 0 },
            ArchiveFormat::Zip => Archive::Zip(ZipWriter::new(zone)),
        }
    }

    pub fn format(&self) -> ArchiveFormat {
        match self {
            Archive::Tar { .. } => ArchiveFormat::Tar,
            Archive::Zip(_) => ArchiveFormat::Zip,
        }
    }

    /// Whether the caller must give [`Archive::end_file`] the CRC-32 of the content.
    pub fn needs_crc(&self) -> bool {
        matches!(self, Archive::Zip(_))
    }

    /// What goes before the entry's content (for a directory or a symlink, all of it).
    pub fn start(&mut self, entry: &ArchiveEntry<'_>) -> Vec<u8> {
        match self {
            Archive::Tar { file_size } => {
                if let ArchiveKind::File { size } = entry.kind {
                    *file_size = size;
                }
                tar::header(entry)
            }
            Archive::Zip(zip) => zip.start(entry),
        }
    }

    /// What goes after a file's content, which had the CRC-32 `crc`.
    pub fn end_file(&mut self, crc: u32) -> Vec<u8> {
        match self {
            Archive::Tar { file_size } => tar::padding(*file_size).to_vec(),
            Archive::Zip(zip) => zip.end_file(crc),
        }
    }

    /// The end of the archive.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Archive::Tar { .. } => tar::END.to_vec(),
            Archive::Zip(zip) => zip.finish(),
        }
    }
}
