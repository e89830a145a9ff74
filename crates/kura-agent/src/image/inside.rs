//! Inside an image snapshot: its partitions and the files of an ext2/3/4 file system on
//! one of them, read through [`VaultImage`] with random access — nothing is restored but
//! the blocks the file system reader asks for. The readers block on the vault: call these
//! from a thread outside the async runtime.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kura_format::SnapshotId;
use kura_image::{DiskImage, ExtractStats, ImageSource};
pub use kura_image::{Entry, EntryKind, ImageLayout, PartitionInfo};

use super::VaultImage;
use crate::browse::path_names;
use crate::{AgentError, OpenVault, Result};

impl ImageSource for VaultImage {
    fn size(&self) -> u64 {
        VaultImage::size(self)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size().saturating_sub(offset)) as usize;
        self.read_exact_at(offset, &mut buf[..n])
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(n)
    }
}

fn open_disk(vault: &OpenVault, id: &SnapshotId) -> Result<DiskImage> {
    let image = vault.handle.block_on(VaultImage::open(vault, id))?;
    Ok(DiskImage::open(Arc::new(image))?)
}

/// The partition table of image snapshot `id` and the file system on each partition
/// (partition 0, the whole image, when there is no table).
pub fn layout(vault: &OpenVault, id: &SnapshotId) -> Result<ImageLayout> {
    Ok(open_disk(vault, id)?.layout()?)
}

/// One entry of a listing inside a partition: its path and what the file system says.
#[derive(Clone, Debug)]
pub struct PartitionEntry {
    pub path: String,
    pub entry: Entry,
}

/// Lists `path` on partition `partition` of image snapshot `id`: the entry itself and,
/// for a directory, what is in it (everything below it with `recursive`).
pub fn list(
    vault: &OpenVault,
    id: &SnapshotId,
    partition: u32,
    path: &Path,
    recursive: bool,
) -> Result<Vec<PartitionEntry>> {
    let volume = open_disk(vault, id)?.open_ext4(partition)?;
    let root = fs_path(path)?;
    let mut out = Vec::new();
    volume.walk(&root, |relative, entry| {
        let depth = relative.split(|&b| b == b'/').filter(|c| !c.is_empty()).count();
        if relative.is_empty() || recursive || depth == 1 {
            out.push(PartitionEntry {
                path: String::from_utf8_lossy(&join(&root, relative)).into_owned(),
                entry: entry.clone(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// What a restore from inside an image did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PartitionRestoreSummary {
    pub snapshot_id: String,
    pub partition: u32,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Devices, fifos and sockets, which are not recreated.
    pub skipped: Vec<String>,
    /// Files and directories not (fully) restored because their data in the vault is
    /// damaged, each `path: why`.
    pub damaged: Vec<String>,
    pub duration_s: f64,
}

/// Restores `includes` (everything when empty) from partition `partition` of image
/// snapshot `id` into `target`, keeping their paths: `/etc/hosts` lands at
/// `target/etc/hosts`. The target is created if missing and must be empty; nothing is
/// ever written outside it or through an existing entry.
pub fn restore(
    vault: &OpenVault,
    id: &SnapshotId,
    partition: u32,
    includes: &[PathBuf],
    target: &Path,
) -> Result<PartitionRestoreSummary> {
    let started = std::time::Instant::now();
    let volume = open_disk(vault, id)?.open_ext4(partition)?;
    std::fs::create_dir_all(target).map_err(|e| AgentError::io(target, e))?;
    if std::fs::read_dir(target)
        .map_err(|e| AgentError::io(target, e))?
        .next()
        .is_some()
    {
        return Err(AgentError::Usage(format!(
            "{} is not empty; restore files from an image into an empty directory",
            target.display()
        )));
    }
    let mut sources = Vec::new();
    for include in includes {
        sources.push(fs_path(include)?);
    }
    if sources.is_empty() {
        for e in volume.list_dir(b"/")? {
            sources.push(join(b"/", &e.name));
        }
    }
    let mut total = ExtractStats::default();
    for source in &sources {
        volume.stat(source)?;
        let relative = Path::new(std::ffi::OsStr::from_bytes(&source[1..]));
        let dest = target.join(relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AgentError::io(parent, e))?;
        }
        let stats = volume.extract(source, &dest)?;
        total.files += stats.files;
        total.dirs += stats.dirs;
        total.symlinks += stats.symlinks;
        total.bytes += stats.bytes;
        total.skipped.extend(stats.skipped);
        total.damaged.extend(stats.damaged);
    }
    Ok(PartitionRestoreSummary {
        snapshot_id: id.to_hex(),
        partition,
        files: total.files,
        dirs: total.dirs,
        symlinks: total.symlinks,
        bytes: total.bytes,
        skipped: total.skipped,
        damaged: total.damaged,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// An absolute file system path (`/` + names) from a user's path; `..` is refused.
fn fs_path(path: &Path) -> Result<Vec<u8>> {
    let names = path_names(path)?;
    if names.is_empty() {
        return Ok(b"/".to_vec());
    }
    Ok(names
        .iter()
        .flat_map(|n| std::iter::once(&b'/').chain(n))
        .copied()
        .collect())
}

fn join(base: &[u8], relative: &[u8]) -> Vec<u8> {
    if relative.is_empty() {
        return base.to_vec();
    }
    let mut out = base.to_vec();
    if out.last() != Some(&b'/') {
        out.push(b'/');
    }
    out.extend_from_slice(relative);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths_become_absolute_and_refuse_parent_dirs() {
        assert_eq!(fs_path(Path::new("etc/hosts")).unwrap(), b"/etc/hosts");
        assert_eq!(fs_path(Path::new("/")).unwrap(), b"/");
        assert!(fs_path(Path::new("/etc/../root")).is_err());
        assert_eq!(join(b"/", b"etc"), b"/etc");
        assert_eq!(join(b"/etc", b"hosts"), b"/etc/hosts");
    }
}
