//! Writing a subtree of an image's filesystem to a local directory.
//!
//! Safety rules, because the image is untrusted: every name is checked (no `/`, NUL,
//! `.`, `..` or empty), every local path is built from checked names under the target,
//! and every object is created new (`create_new`, `create_dir`, `symlink`), so nothing
//! that already exists, such as a planted symlink, is ever written through. Files are
//! owned by the extracting user; setuid and setgid bits are therefore dropped.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT, utimensat};

use crate::error::{ImageError, Result};
use crate::ext4::{Entry, EntryKind, Ext4Volume, WalkVisitor};

/// What an extraction wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Device nodes, fifos and sockets, which are not recreated (relative paths).
    pub skipped: Vec<String>,
    /// Files and directories whose content could not be read from the image (damaged
    /// in the backup, say), each `path: why`: a file is not written at all, a directory
    /// is created without the entries that could not be read.
    pub damaged: Vec<String>,
}

/// Whether `name` can be used as one local path component.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Ext4Volume {
    /// Writes the entry at `path` (a file, symlink or whole directory tree) to `target`,
    /// which must not exist yet; its parent must. Keeps content, permission bits (less
    /// setuid/setgid), mtimes and symlinks; hard links become separate copies.
    pub fn extract(&self, path: impl AsRef<[u8]>, target: &Path) -> Result<ExtractStats> {
        if target.symlink_metadata().is_ok() {
            return Err(ImageError::TargetExists(target.display().to_string()));
        }
        let mut writer = TreeWriter {
            volume: self,
            source_root: path.as_ref().to_vec(),
            target: target.to_path_buf(),
            stats: ExtractStats::default(),
        };
        self.walk_with(path.as_ref(), &mut writer)?;
        Ok(writer.stats)
    }
}

struct TreeWriter<'a> {
    volume: &'a Ext4Volume,
    source_root: Vec<u8>,
    target: PathBuf,
    stats: ExtractStats,
}

impl TreeWriter<'_> {
    fn local_path(&self, relative: &[u8]) -> PathBuf {
        if relative.is_empty() {
            self.target.clone()
        } else {
            self.target.join(OsStr::from_bytes(relative))
        }
    }

    fn source_path(&self, relative: &[u8]) -> Vec<u8> {
        let mut path = self.source_root.clone();
        if !relative.is_empty() {
            if path.last() != Some(&b'/') {
                path.push(b'/');
            }
            path.extend_from_slice(relative);
        }
        path
    }

    fn note_damage(&mut self, relative: &[u8], err: &ImageError) {
        let path = String::from_utf8_lossy(&self.source_path(relative)).into_owned();
        self.stats.damaged.push(format!("{path}: {err}"));
    }

    fn write_file(&mut self, relative: &[u8], local: &Path, entry: &Entry) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(local)
            .map_err(|e| write_error(local, e))?;
        let mut out = BufWriter::new(file);
        self.stats.bytes += self
            .volume
            .copy_file(self.source_path(relative), &mut out)
            .map_err(|e| match e {
                ImageError::Write { source, .. } => write_error(local, source),
                other => other,
            })?;
        out.flush().map_err(|e| write_error(local, e))?;
        drop(out);
        set_mode(local, entry)?;
        self.stats.files += 1;
        Ok(())
    }
}

impl WalkVisitor for TreeWriter<'_> {
    fn enter(&mut self, relative: &[u8], entry: &Entry) -> Result<()> {
        if !relative.is_empty() && !is_safe_name(&entry.name) {
            let dir = relative
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(&b""[..], |slash| &relative[..slash]);
            return Err(ImageError::UnsafeName {
                dir: String::from_utf8_lossy(&self.source_path(dir)).into_owned(),
                name: entry.name_lossy().into_owned(),
            });
        }
        let local = self.local_path(relative);
        match entry.kind {
            EntryKind::Dir => {
                // Permissions and mtime are set on leaving, after the children are in.
                fs::create_dir(&local).map_err(|e| write_error(&local, e))?;
                self.stats.dirs += 1;
            }
            EntryKind::File => match self.write_file(relative, &local, entry) {
                Ok(()) => set_mtime(&local, entry)?,
                // What is written stops here; no partial file is left to look whole.
                Err(err) if err.is_unreadable_content() => {
                    fs::remove_file(&local).map_err(|e| write_error(&local, e))?;
                    self.note_damage(relative, &err);
                }
                Err(err) => return Err(err),
            },
            EntryKind::Symlink => {
                let target = entry.symlink_target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &local)
                    .map_err(|e| write_error(&local, e))?;
                set_mtime(&local, entry)?;
                self.stats.symlinks += 1;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo | EntryKind::Socket => {
                self.stats
                    .skipped
                    .push(String::from_utf8_lossy(relative).into_owned());
            }
        }
        Ok(())
    }

    fn leave(&mut self, relative: &[u8], entry: &Entry) -> Result<()> {
        let local = self.local_path(relative);
        set_mode(&local, entry)?;
        set_mtime(&local, entry)
    }

    fn unreadable(&mut self, relative: &[u8], err: ImageError) -> Result<()> {
        self.note_damage(relative, &err);
        Ok(())
    }
}

fn set_mode(local: &Path, entry: &Entry) -> Result<()> {
    let mode = u32::from(entry.mode) & 0o1777;
    fs::set_permissions(local, Permissions::from_mode(mode)).map_err(|e| write_error(local, e))
}

/// Sets the mtime of `local` itself (never a symlink's target); leaves the atime alone.
fn set_mtime(local: &Path, entry: &Entry) -> Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: entry.mtime,
            tv_nsec: entry.mtime_nanos.into(),
        },
    };
    utimensat(CWD, local, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| write_error(local, io::Error::from(e)))
}

fn write_error(path: &Path, source: io::Error) -> ImageError {
    ImageError::Write {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_recognised() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"\xff\xfe", b"a b"] {
            assert!(is_safe_name(good), "{good:?}");
        }
    }
}
