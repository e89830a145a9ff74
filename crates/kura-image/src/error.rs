//! The one error type of this crate. Messages name the partition or path involved and,
//! where there is one, what the caller can do about it.

use crate::detect::FsKind;

/// Everything that can go wrong while reading an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The source failed to deliver bytes that should be there.
    #[error("reading {what} from the image failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// The disk has a protective MBR, but neither GPT header is valid.
    #[error(
        "the image has a protective MBR but no valid GPT (primary: {primary}; backup: {backup}); \
         repair the table on a copy with sgdisk/gdisk or browse partition 0 (the whole image)"
    )]
    GptDamaged { primary: String, backup: String },

    /// The caller asked for a partition the table does not have.
    #[error(
        "the image has no partition {number} (partitions: {available}); pass one of those, or 0 for the whole image"
    )]
    NoSuchPartition { number: u32, available: String },

    /// The table places a partition (partly) past the end of the image.
    #[error(
        "partition {number} (bytes {start}..{end}) reaches past the end of the image ({size} bytes): \
         the image is truncated or its partition table is damaged"
    )]
    PartitionOutOfRange {
        number: u32,
        start: u64,
        end: u64,
        size: u64,
    },

    /// The partition holds a filesystem this crate recognises but cannot browse.
    #[error("unsupported filesystem {kind} on partition {partition} (only ext2/3/4 can be browsed)")]
    UnsupportedFilesystem { kind: FsKind, partition: u32 },

    /// No known superblock signature on the partition.
    #[error(
        "no known filesystem on partition {partition}: it may be empty, encrypted by a scheme \
         without a header, or the wrong partition"
    )]
    UnknownFilesystem { partition: u32 },

    /// The ext superblock describes a filesystem that cannot fit where it is.
    #[error("the ext filesystem on partition {partition} is damaged: {reason}")]
    Ext4Superblock { partition: u32, reason: String },

    /// The filesystem uses on-disk features the ext4 reader does not implement.
    #[error(
        "the ext filesystem on partition {partition} uses {features}, which kura-image cannot \
         read yet: restore the image to get at its files"
    )]
    Ext4Features { partition: u32, features: String },

    /// An error from the ext4 reader, with the path it was about.
    #[error("ext4: {path}: {source}")]
    Ext4 {
        path: String,
        #[source]
        source: ext4_view::Ext4Error,
    },

    /// A symlink inode claims a target longer than any filesystem stores.
    #[error(
        "symlink {path} claims a {len}-byte target, longer than any filesystem allows: \
         the filesystem is damaged"
    )]
    SymlinkTooLong { path: String, len: u64 },

    /// A directory entry has a name that cannot be written safely to a local directory.
    #[error(
        "refusing to extract entry {name:?} in {dir}: names must not be empty, '.', '..', or contain '/' or NUL"
    )]
    UnsafeName { dir: String, name: String },

    /// Extraction never replaces what is already on the local disk.
    #[error("extraction target {0} already exists: choose a path that does not exist yet")]
    TargetExists(String),

    /// A walk went deeper or wider than any sound filesystem can: a directory cycle.
    #[error("walking {path} exceeded {limit}: the filesystem has a directory cycle or is damaged")]
    WalkLimit { path: String, limit: String },

    /// Writing the extracted tree to the local disk failed.
    #[error("writing {path} failed: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Whether this is one entry's bytes that the image source could not deliver (damaged
    /// or missing in a backup), so a walk can go on past it. A filesystem that is corrupt
    /// or hostile (bad names, cycles) and writing errors are not: they stop the walk.
    pub fn is_unreadable_content(&self) -> bool {
        matches!(
            self,
            ImageError::Io { .. }
                | ImageError::Ext4 {
                    source: ext4_view::Ext4Error::Io(_),
                    ..
                }
        )
    }

    /// Whether a path named in the request does not exist in the filesystem.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ImageError::Ext4 {
                source: ext4_view::Ext4Error::NotFound,
                ..
            }
        )
    }

    /// Whether a directory was asked of something else (or a file of a special file).
    pub fn is_wrong_kind(&self) -> bool {
        matches!(
            self,
            ImageError::Ext4 {
                source: ext4_view::Ext4Error::NotADirectory
                    | ext4_view::Ext4Error::IsADirectory
                    | ext4_view::Ext4Error::IsASpecialFile,
                ..
            }
        )
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
