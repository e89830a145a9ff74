//! Browsing a disk image without restoring it: partition tables, filesystem detection
//! and ext2/3/4 reading, all through random access to the image's bytes.
//!
//! This crate owns reading what is *inside* an image: the MBR (with logical partitions)
//! or GPT of a disk ([`PartitionTable`]), which filesystem a partition holds
//! ([`FsKind`]), and an ext2/3/4 filesystem's directories, files and symlinks
//! ([`Ext4Volume`]), including extracting a subtree to a local directory. Every byte
//! comes through one small trait, [`ImageSource`] (`size` + `read_at`), so the same code
//! reads a local file, a buffer, or a snapshot in a vault behind a chunk cache.
//!
//! It must not know where the bytes live: no vaults, chunks, packs, HTTP, async runtime
//! or CLI. Callers implement [`ImageSource`] over their storage.
//!
//! All image bytes are untrusted. Parsers never panic on them, cap what they allocate and
//! how far they follow chains, and report damage as [`ImageError`] or as warnings on the
//! [`PartitionTable`]; each parser has a fuzz target in `fuzz/`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kura_image::{DiskImage, ImageSource};
//!
//! # fn main() -> kura_image::Result<()> {
//! let source: Arc<dyn ImageSource> = Arc::new(std::fs::File::open("disk.img").unwrap());
//! let image = DiskImage::open(source)?;
//! for p in &image.table().partitions {
//!     println!("{} {} {} {}", p.number, p.start, p.len, p.kind);
//! }
//! let volume = image.open_ext4(2)?;
//! for entry in volume.list_dir("/etc")? {
//!     println!("{:o} {} {}", entry.mode, entry.size, entry.name_lossy());
//! }
//! # Ok(())
//! # }
//! ```

pub mod detect;
mod error;
pub mod ext4;
pub mod extract;
pub mod partition;
mod source;

use std::sync::Arc;

pub use detect::FsKind;
pub use error::{ImageError, Result};
pub use ext4::{Entry, EntryKind, Ext4Volume, FileReader};
pub use extract::ExtractStats;
pub use partition::{Guid, Partition, PartitionTable, PartitionType, TableScheme};
pub use source::{ImageSlice, ImageSource};

/// One partition of an image as listings show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    pub number: u32,
    pub start: u64,
    pub length: u64,
    /// The partition type, e.g. `Linux filesystem` or `0x83`.
    pub kind: String,
    /// GPT name; empty for MBR.
    pub name: String,
    /// The file system found on it (`ext4`, `xfs`, …), if any is recognised.
    pub filesystem: Option<String>,
}

/// What an image holds: its size, partition table and partitions ([`DiskImage::layout`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImageLayout {
    pub size: u64,
    /// `dos`, `gpt` or `none`.
    pub table: String,
    pub partitions: Vec<PartitionInfo>,
    /// Damage found in the partition table that did not stop it from being read.
    pub warnings: Vec<String>,
}

/// A disk image with its partition table read: the entry point for browsing.
pub struct DiskImage {
    source: Arc<dyn ImageSource>,
    table: PartitionTable,
}

impl std::fmt::Debug for DiskImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskImage")
            .field("size", &self.source.size())
            .field("table", &self.table)
            .finish()
    }
}

impl DiskImage {
    /// Reads the partition table of `source`.
    pub fn open(source: Arc<dyn ImageSource>) -> Result<Self> {
        let table = PartitionTable::read(&*source)?;
        Ok(Self { source, table })
    }

    /// The partition table (scheme [`TableScheme::None`] when there is none).
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// The bytes of partition `number`; 0 is the whole image, always available, for a
    /// filesystem without a partition table.
    pub fn partition(&self, number: u32) -> Result<ImageSlice> {
        if number == 0 {
            return Ok(ImageSlice::new(self.source.clone(), 0, self.source.size()));
        }
        let p = self
            .table
            .get(number)
            .ok_or_else(|| ImageError::NoSuchPartition {
                number,
                available: self.available(),
            })?;
        let size = self.source.size();
        if p.end() > size {
            return Err(ImageError::PartitionOutOfRange {
                number,
                start: p.start,
                end: p.end(),
                size,
            });
        }
        Ok(ImageSlice::new(self.source.clone(), p.start, p.len))
    }

    /// The filesystem on partition `number`, if a known signature is there.
    pub fn detect(&self, number: u32) -> Result<Option<FsKind>> {
        detect::detect(&self.partition(number)?)
    }

    /// Opens the ext2/3/4 filesystem on partition `number` (0: the whole image). Other
    /// filesystems give [`ImageError::UnsupportedFilesystem`] or
    /// [`ImageError::UnknownFilesystem`].
    pub fn open_ext4(&self, number: u32) -> Result<Ext4Volume> {
        let slice = self.partition(number)?;
        match detect::detect(&slice)? {
            Some(kind) if kind.is_browsable() => Ext4Volume::open_partition(Arc::new(slice), number),
            Some(kind) => Err(ImageError::UnsupportedFilesystem {
                kind,
                partition: number,
            }),
            None => Err(ImageError::UnknownFilesystem { partition: number }),
        }
    }

    /// The partition table and the file system on each partition (partition 0, the whole
    /// image, when there is no table): what `kura ls SNAP` and the portal show.
    pub fn layout(&self) -> Result<ImageLayout> {
        let table = self.table();
        let mut partitions = Vec::new();
        for p in &table.partitions {
            let filesystem = match p.kind.is_extended() {
                true => None,
                false => self.detect(p.number).ok().flatten().map(|f| f.to_string()),
            };
            partitions.push(PartitionInfo {
                number: p.number,
                start: p.start,
                length: p.len,
                kind: p.kind.to_string(),
                name: p.name.clone(),
                filesystem,
            });
        }
        let size = self.source.size();
        if partitions.is_empty() {
            partitions.push(PartitionInfo {
                number: 0,
                start: 0,
                length: size,
                kind: "whole image".into(),
                name: String::new(),
                filesystem: self.detect(0)?.map(|f| f.to_string()),
            });
        }
        Ok(ImageLayout {
            size,
            table: table.scheme.to_string(),
            partitions,
            warnings: table.warnings.clone(),
        })
    }

    fn available(&self) -> String {
        let numbers: Vec<String> = self
            .table
            .partitions
            .iter()
            .map(|p| p.number.to_string())
            .collect();
        if numbers.is_empty() {
            "none".into()
        } else {
            numbers.join(", ")
        }
    }
}
