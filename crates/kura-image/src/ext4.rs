//! Browsing an ext2/3/4 filesystem through an [`ImageSource`]: listing directories,
//! stat, reading files and symlinks, and walking subtrees.
//!
//! The filesystem itself is read by the `ext4-view` crate (extents, block maps, htree
//! and linear directories, inline data, 64-bit, journal replay in memory). This module
//! adds what that crate leaves to its caller: a superblock check that bounds what
//! loading may allocate on a hostile image, typed entries, and walk limits that end a
//! directory cycle.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::sync::Arc;

use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType, Metadata};

use crate::detect::EXT_SUPERBLOCK_AT;
use crate::error::{ImageError, Result};
use crate::partition::{read_u16, read_u32};
use crate::source::ImageSource;

/// Most block groups accepted (2²² groups of 128 MiB is 512 TiB); bounds the descriptor
/// table `ext4-view` allocates at load.
const MAX_BLOCK_GROUPS: u64 = 1 << 22;
/// Longest path a walk builds, as Linux's `PATH_MAX`.
pub const MAX_WALK_PATH: usize = 4096;
/// Deepest a walk goes below its starting directory. Real trees stay far below; the cap
/// keeps a directory cycle cheap, since every level resolves its path from the root.
pub const MAX_WALK_DEPTH: usize = 256;
/// Longest symlink target Linux creates (`PATH_MAX`).
const MAX_SYMLINK_LEN: u64 = 4096;
/// Smallest inode; bounds the inode count a hostile superblock can claim.
const MIN_INODE_SIZE: u64 = 128;

/// What kind of object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// One file, directory or other object of the filesystem, not following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Last path component, as stored (ext4 names are bytes, usually UTF-8); empty for
    /// the root directory.
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    /// Size in bytes (for a symlink: the length of its target).
    pub size: u64,
    /// Modification time: seconds since the Unix epoch (negative before it) …
    pub mtime: i64,
    /// … and nanoseconds within that second.
    pub mtime_nanos: u32,
    /// Target of a symlink, as stored.
    pub symlink_target: Option<Vec<u8>>,
}

impl Entry {
    /// The name for display, with invalid UTF-8 replaced.
    pub fn name_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// An open ext2/3/4 filesystem.
///
/// Not `Send`: `ext4-view` keeps its block cache behind an `Rc`. Open the volume on the
/// thread (or inside the `spawn_blocking` closure) that uses it; opening is cheap, it
/// reads the superblock, the group descriptors and the journal.
pub struct Ext4Volume {
    fs: Ext4,
    /// Most directories a walk may enter: the filesystem's inode count.
    max_dirs: u64,
}

impl std::fmt::Debug for Ext4Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ext4Volume")
            .field("max_dirs", &self.max_dirs)
            .finish_non_exhaustive()
    }
}

/// Adapts an [`ImageSource`] to the reader `ext4-view` expects.
struct SourceReader(Arc<dyn ImageSource>);

impl Ext4Read for SourceReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.read_exact_at(start_byte, dst)?)
    }
}

impl Ext4Volume {
    /// Opens the ext2/3/4 filesystem that starts at byte 0 of `source` (a partition,
    /// e.g. an [`crate::ImageSlice`], or a whole-disk filesystem).
    pub fn open(source: Arc<dyn ImageSource>) -> Result<Self> {
        Self::open_partition(source, 0)
    }

    /// [`Self::open`], naming `partition` in errors.
    pub(crate) fn open_partition(source: Arc<dyn ImageSource>, partition: u32) -> Result<Self> {
        let max_dirs = check_superblock(&*source, partition)?;
        let fs = Ext4::load(Box::new(SourceReader(source))).map_err(|source| ImageError::Ext4 {
            path: format!("partition {partition}"),
            source,
        })?;
        Ok(Self { fs, max_dirs })
    }

    /// The filesystem label.
    pub fn label(&self) -> String {
        self.fs.label().display().to_string()
    }

    /// The entries of the directory at `path` (absolute; symlinks along the way are
    /// followed inside the filesystem), without `.` and `..`, sorted by name.
    pub fn list_dir(&self, path: impl AsRef<[u8]>) -> Result<Vec<Entry>> {
        let path = path.as_ref();
        let context = |source| ext4_error(path, source);
        let mut entries = Vec::new();
        for dir_entry in self.fs.read_dir(path).map_err(context)? {
            let dir_entry = dir_entry.map_err(context)?;
            let name = dir_entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let metadata = dir_entry.metadata().map_err(context)?;
            let full = dir_entry.path();
            entries.push(self.entry(full.as_ref(), name.as_ref().to_vec(), &metadata)?);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The entry at `path`, not following a final symlink (like `lstat`).
    pub fn stat(&self, path: impl AsRef<[u8]>) -> Result<Entry> {
        let path = path.as_ref();
        let metadata = self.fs.symlink_metadata(path).map_err(|e| ext4_error(path, e))?;
        let name = path
            .rsplit(|&b| b == b'/')
            .find(|c| !c.is_empty())
            .unwrap_or_default()
            .to_vec();
        self.entry(path, name, &metadata)
    }

    /// The target of the symlink at `path`, as stored.
    pub fn read_link(&self, path: impl AsRef<[u8]>) -> Result<Vec<u8>> {
        let path = path.as_ref();
        let metadata = self.fs.symlink_metadata(path).map_err(|e| ext4_error(path, e))?;
        self.symlink_target(path, &metadata)
    }

    /// Reads a symlink's target after checking its length: `ext4-view` allocates the
    /// length the inode claims, which a damaged inode can set to terabytes.
    fn symlink_target(&self, path: &[u8], metadata: &Metadata) -> Result<Vec<u8>> {
        if metadata.is_symlink() && metadata.len() > MAX_SYMLINK_LEN {
            return Err(ImageError::SymlinkTooLong {
                path: String::from_utf8_lossy(path).into_owned(),
                len: metadata.len(),
            });
        }
        let target = self.fs.read_link(path).map_err(|e| ext4_error(path, e))?;
        Ok(target.as_ref().to_vec())
    }

    /// A reader over the content of the regular file at `path` (symlinks followed).
    pub fn open_file(&self, path: impl AsRef<[u8]>) -> Result<FileReader> {
        let path = path.as_ref();
        let file = self.fs.open(path).map_err(|e| ext4_error(path, e))?;
        Ok(FileReader {
            file,
            path: String::from_utf8_lossy(path).into_owned(),
        })
    }

    /// Streams the content of the file at `path` into `out`; returns the bytes written.
    pub fn copy_file(&self, path: impl AsRef<[u8]>, out: &mut dyn Write) -> Result<u64> {
        let path = path.as_ref();
        let mut reader = self.open_file(path)?;
        // Sized for the file, so extracting many small files does not zero 256 KiB each.
        let len = usize::try_from(reader.size())
            .unwrap_or(usize::MAX)
            .clamp(1, 256 * 1024);
        let mut buf = vec![0u8; len];
        let mut total = 0u64;
        loop {
            let n = reader
                .file
                .read_bytes(&mut buf)
                .map_err(|e| ext4_error(path, e))?;
            if n == 0 {
                return Ok(total);
            }
            out.write_all(&buf[..n]).map_err(|source| ImageError::Write {
                path: "the output".into(),
                source,
            })?;
            total += n as u64;
        }
    }

    /// Visits `path` and, if it is a directory, everything below it, parents before
    /// children, names sorted. `visit` gets the path relative to `path` (empty for
    /// `path` itself) and the entry. Symlinks are reported, never followed.
    pub fn walk(
        &self,
        path: impl AsRef<[u8]>,
        mut visit: impl FnMut(&[u8], &Entry) -> Result<()>,
    ) -> Result<()> {
        struct PreOrder<F>(F);
        impl<F: FnMut(&[u8], &Entry) -> Result<()>> WalkVisitor for PreOrder<F> {
            fn enter(&mut self, relative: &[u8], entry: &Entry) -> Result<()> {
                (self.0)(relative, entry)
            }
        }
        self.walk_with(path.as_ref(), &mut PreOrder(&mut visit))
    }

    /// Walks depth first, calling `enter` for every entry and `leave` after a
    /// directory's children. Stops with [`ImageError::WalkLimit`] past [`MAX_WALK_PATH`]
    /// bytes, [`MAX_WALK_DEPTH`] levels, or more directories than the filesystem has
    /// inodes: in a sound filesystem each directory is reached once, so only a directory
    /// cycle (a hard-linked directory) gets there.
    pub(crate) fn walk_with(&self, root: &[u8], visitor: &mut dyn WalkVisitor) -> Result<()> {
        let entry = self.stat(root)?;
        let mut walk = Walk {
            absolute: root.to_vec(),
            relative: Vec::new(),
            depth: 0,
            dirs_left: self.max_dirs,
        };
        self.walk_entry(&entry, &mut walk, visitor)
    }

    fn walk_entry(&self, entry: &Entry, walk: &mut Walk, visitor: &mut dyn WalkVisitor) -> Result<()> {
        let limit = |walk: &Walk, limit: String| ImageError::WalkLimit {
            path: String::from_utf8_lossy(&walk.absolute).into_owned(),
            limit,
        };
        if walk.absolute.len() > MAX_WALK_PATH {
            return Err(limit(
                walk,
                format!("the path length limit of {MAX_WALK_PATH} bytes"),
            ));
        }
        if walk.depth > MAX_WALK_DEPTH {
            return Err(limit(walk, format!("{MAX_WALK_DEPTH} directory levels")));
        }
        visitor.enter(&walk.relative, entry)?;
        if entry.kind != EntryKind::Dir {
            return Ok(());
        }
        walk.dirs_left = walk.dirs_left.checked_sub(1).ok_or_else(|| {
            limit(
                walk,
                format!("{} directories, the inode count of the filesystem", self.max_dirs),
            )
        })?;
        let children = match self.list_dir(&walk.absolute) {
            Ok(children) => children,
            Err(err) if err.is_unreadable_content() => {
                visitor.unreadable(&walk.relative, err)?;
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        for child in children {
            let (absolute_len, relative_len) = (walk.absolute.len(), walk.relative.len());
            if walk.absolute.last() != Some(&b'/') {
                walk.absolute.push(b'/');
            }
            walk.absolute.extend_from_slice(&child.name);
            if !walk.relative.is_empty() {
                walk.relative.push(b'/');
            }
            walk.relative.extend_from_slice(&child.name);
            walk.depth += 1;
            let walked = self.walk_entry(&child, walk, visitor);
            walk.depth -= 1;
            walk.absolute.truncate(absolute_len);
            walk.relative.truncate(relative_len);
            walked?;
        }
        visitor.leave(&walk.relative, entry)
    }

    fn entry(&self, path: &[u8], name: Vec<u8>, metadata: &Metadata) -> Result<Entry> {
        let kind = match metadata.file_type() {
            FileType::Regular => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            FileType::CharacterDevice => EntryKind::CharDevice,
            FileType::BlockDevice => EntryKind::BlockDevice,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
        };
        let symlink_target = match kind {
            EntryKind::Symlink => Some(self.symlink_target(path, metadata)?),
            _ => None,
        };
        let mtime = metadata.modified();
        Ok(Entry {
            name,
            kind,
            mode: metadata.mode(),
            uid: metadata.uid(),
            gid: metadata.gid(),
            size: metadata.len(),
            mtime: mtime.seconds(),
            mtime_nanos: mtime.nanoseconds(),
            symlink_target,
        })
    }
}

/// Where a walk is and how much it may still do.
struct Walk {
    absolute: Vec<u8>,
    relative: Vec<u8>,
    depth: usize,
    dirs_left: u64,
}

/// Callbacks of [`Ext4Volume::walk_with`].
pub(crate) trait WalkVisitor {
    /// Called for every entry, parents first.
    fn enter(&mut self, relative: &[u8], entry: &Entry) -> Result<()>;
    /// Called for a directory after all its children.
    fn leave(&mut self, _relative: &[u8], _entry: &Entry) -> Result<()> {
        Ok(())
    }
    /// Called when a directory's entries cannot be read (see
    /// [`ImageError::is_unreadable_content`]); the walk goes on without them unless this
    /// fails, as it does by default.
    fn unreadable(&mut self, _relative: &[u8], err: ImageError) -> Result<()> {
        Err(err)
    }
}

/// Content of one file, read on demand through the image source.
pub struct FileReader {
    file: ext4_view::File,
    path: String,
}

impl FileReader {
    /// Size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.file.metadata().len()
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file
            .read_bytes(buf)
            .map_err(|e| io::Error::other(format!("ext4: {}: {e}", self.path)))
    }
}

fn ext4_error(path: &[u8], source: Ext4Error) -> ImageError {
    ImageError::Ext4 {
        path: String::from_utf8_lossy(path).into_owned(),
        source,
    }
}

/// Incompatible features `ext4-view` 1.0 refuses, by name as `mke2fs -O` spells them.
const UNREADABLE_FEATURES: [(u32, &str); 8] = [
    (0x1, "compression"),
    (0x8, "journal_dev"),
    (0x10, "meta_bg"),
    (0x100, "mmp"),
    (0x400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
];
const INCOMPAT_FILETYPE: u32 = 0x2;

/// Checks that the superblock describes a filesystem that fits in `source` with a sane
/// number of block groups, before `ext4-view` allocates per group, and names features
/// that cannot be read. Returns the inode count, bounded by what fits in the filesystem.
fn check_superblock(source: &dyn ImageSource, partition: u32) -> Result<u64> {
    const INCOMPAT_64BIT: u32 = 0x80;
    let damaged = |reason: String| ImageError::Ext4Superblock { partition, reason };
    let mut sb = [0u8; 1024];
    source
        .read_exact_at(EXT_SUPERBLOCK_AT as u64, &mut sb)
        .map_err(|e| ImageError::io("the ext superblock", e))?;
    if read_u16(&sb, 0x38) != 0xef53 {
        return Err(damaged("no ext2/3/4 superblock (magic 0xEF53 missing)".into()));
    }
    let incompat = read_u32(&sb, 0x60);
    let mut unreadable: Vec<&str> = UNREADABLE_FEATURES
        .iter()
        .filter(|(bit, _)| incompat & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if incompat & INCOMPAT_FILETYPE == 0 {
        unreadable.push("directory entries without file types (no filetype feature)");
    }
    if !unreadable.is_empty() {
        return Err(ImageError::Ext4Features {
            partition,
            features: unreadable.join(", "),
        });
    }
    let log_block_size = read_u32(&sb, 0x18);
    if log_block_size > 6 {
        return Err(damaged(format!(
            "block size exponent {log_block_size} is invalid (block sizes are 1 KiB to 64 KiB)"
        )));
    }
    let block_size = 1024u64 << log_block_size;
    let is_64bit = incompat & INCOMPAT_64BIT != 0;
    let blocks_hi = if is_64bit { read_u32(&sb, 0x150) } else { 0 };
    let blocks = u64::from(read_u32(&sb, 0x4)) | (u64::from(blocks_hi) << 32);
    let fs_bytes = blocks.saturating_mul(block_size);
    if fs_bytes > source.size() {
        return Err(damaged(format!(
            "it spans {fs_bytes} bytes but its partition has only {}: the image is truncated",
            source.size()
        )));
    }
    let blocks_per_group = u64::from(read_u32(&sb, 0x20)).max(1);
    let groups = blocks.div_ceil(blocks_per_group);
    let descriptor_size = if is_64bit {
        u64::from(read_u16(&sb, 0xfe)).max(32)
    } else {
        32
    };
    if groups > MAX_BLOCK_GROUPS || groups.saturating_mul(descriptor_size) > fs_bytes {
        return Err(damaged(format!(
            "{groups} block groups is more than the filesystem can hold"
        )));
    }
    Ok(u64::from(read_u32(&sb, 0x0)).min(fs_bytes / MIN_INODE_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64 KiB image whose superblock says what `edit` writes.
    fn superblock(edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut image = vec![0u8; 64 * 1024];
        let sb = &mut image[EXT_SUPERBLOCK_AT..EXT_SUPERBLOCK_AT + 1024];
        sb[0x38..0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
        sb[0x60] = INCOMPAT_FILETYPE as u8;
        sb[0x04..0x08].copy_from_slice(&64u32.to_le_bytes());
        sb[0x20..0x24].copy_from_slice(&8192u32.to_le_bytes());
        edit(sb);
        image
    }

    fn damage(image: Vec<u8>) -> String {
        match check_superblock(&image, 7) {
            Err(ImageError::Ext4Superblock { partition: 7, reason }) => reason,
            other => panic!("expected a damaged superblock, got {other:?}"),
        }
    }

    #[test]
    fn hostile_superblock_geometry_is_refused_before_loading() {
        assert!(check_superblock(&superblock(|_| {}), 0).is_ok());
        let huge_exponent = superblock(|sb| sb[0x18..0x1c].copy_from_slice(&u32::MAX.to_le_bytes()));
        assert!(damage(huge_exponent).contains("exponent 4294967295"));
        let too_big = superblock(|sb| sb[0x04..0x08].copy_from_slice(&u32::MAX.to_le_bytes()));
        assert!(damage(too_big).contains("the image is truncated"));
        // 2^23 one-block groups on an 8 GiB source: only the first 64 KiB are real.
        struct Huge(Vec<u8>);
        impl ImageSource for Huge {
            fn size(&self) -> u64 {
                8 << 30
            }
            fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
                self.0.as_slice().read_at(offset, buf)
            }
        }
        let many_groups = Huge(superblock(|sb| {
            sb[0x04..0x08].copy_from_slice(&(1u32 << 23).to_le_bytes());
            sb[0x20..0x24].copy_from_slice(&1u32.to_le_bytes());
        }));
        match check_superblock(&many_groups, 7) {
            Err(ImageError::Ext4Superblock { reason, .. }) => {
                assert!(reason.contains("8388608 block groups"))
            }
            other => panic!("expected too many block groups, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_features_are_named_together() {
        let image = superblock(|sb| sb[0x60..0x64].copy_from_slice(&(0x8000u32 | 0x10).to_le_bytes()));
        let err = check_superblock(&image, 3).unwrap_err().to_string();
        assert!(
            err.contains("partition 3 uses meta_bg, inline_data, directory entries without file types"),
            "{err}"
        );
    }
}
