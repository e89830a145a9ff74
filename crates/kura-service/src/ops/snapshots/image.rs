//! Inside image snapshots: the partition table, and the ext2/3/4 file systems on the
//! partitions, read by `kura-image` through [`ImageReader`] over the tenant's vault. Only
//! the chunks the partition table and the file system's metadata live in are read (and,
//! for a download, the file's own blocks); nothing is restored.
//!
//! `kura-image`'s ext4 reader is synchronous and not `Send`, so each request reads on a
//! blocking thread of its own, which reads the vault by blocking on the runtime.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use kura_format::image::ImageIndex;
use kura_format::random_access::{ChunkSource, ImageReader};
use kura_format::{BlobCodec, ChunkId, FormatError};
use kura_image::{DiskImage, EntryKind as FsEntryKind, ImageError, ImageSource};
use kura_store::{StoreError, Vault};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use kura_image::{ImageLayout, PartitionInfo};

use super::archive::{Archive, ArchiveEntry, ArchiveKind};
use super::{
    Download, DownloadKind, EntryKind, Opened, Sent, SnapshotPath, Stop, TreeEntry, TreePage, damaged, page,
    tar_safe,
};
use crate::{ServiceError, ServiceResult};

/// Why a chunk of the image could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plaintext chunks of the tenant's vault, read blocking.
struct VaultChunks {
    vault: Vault,
    codec: Arc<BlobCodec>,
    handle: Handle,
}

impl ChunkSource for VaultChunks {
    type Error = ReadError;

    fn read_plain(&self, id: &ChunkId) -> Result<Vec<u8>, ReadError> {
        let blob = self.handle.block_on(self.vault.read_blob(id))?;
        Ok(self.codec.open(id, &blob)?)
    }
}

/// An image snapshot as `kura-image` reads it.
struct Disk(ImageReader<VaultChunks>);

impl ImageSource for Disk {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size().saturating_sub(offset)) as usize;
        self.0
            .read_exact_at(offset, &mut buf[..n])
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(n)
    }
}

/// What an image error means to the user.
fn image_error(err: ImageError) -> ServiceError {
    if err.is_not_found() {
        return ServiceError::not_found(format!("not in this partition: {err}"));
    }
    if err.is_wrong_kind() {
        return ServiceError::invalid(err.to_string());
    }
    match err {
        ImageError::NoSuchPartition { .. } => ServiceError::not_found(err.to_string()),
        ImageError::UnsupportedFilesystem { .. }
        | ImageError::UnknownFilesystem { .. }
        | ImageError::Ext4Features { .. } => ServiceError::invalid(err.to_string()),
        other => damaged("this image's file system", other),
    }
}

/// Opens the image of `opened` (its index read here) on the current blocking thread.
fn open_disk(opened: &Opened, index: ImageIndex, handle: Handle) -> ServiceResult<DiskImage> {
    let chunks = VaultChunks {
        vault: opened.vault.clone(),
        codec: Arc::clone(&opened.codec),
        handle,
    };
    DiskImage::open(Arc::new(Disk(ImageReader::new(chunks, index)))).map_err(image_error)
}

async fn load_index(opened: &Opened) -> ServiceResult<ImageIndex> {
    ImageIndex::decode(&opened.plain(&opened.root).await?).map_err(|err| damaged("the image index", err))
}

/// The partition a path's first name names, and the file system path after it.
fn partition_path(names: &[Vec<u8>]) -> ServiceResult<(u32, Vec<u8>)> {
    let first = String::from_utf8_lossy(&names[0]);
    let number = first.parse::<u32>().map_err(|_| {
        ServiceError::not_found(format!(
            "{first:?} is not a partition of this image: paths in an image snapshot start with a partition number (/1/etc)"
        ))
    })?;
    let mut path = Vec::new();
    for name in &names[1..] {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    Ok((number, path))
}

fn kind_of(kind: FsEntryKind) -> EntryKind {
    match kind {
        FsEntryKind::File => EntryKind::File,
        FsEntryKind::Dir => EntryKind::Dir,
        FsEntryKind::Symlink => EntryKind::Symlink,
        FsEntryKind::CharDevice => EntryKind::CharDevice,
        FsEntryKind::BlockDevice => EntryKind::BlockDevice,
        FsEntryKind::Fifo => EntryKind::Fifo,
        FsEntryKind::Socket => EntryKind::Socket,
    }
}

fn mtime_ns(entry: &kura_image::Entry) -> i64 {
    entry
        .mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(entry.mtime_nanos))
}

/// The root of an image snapshot (its partitions), or one directory of the file system
/// on one partition.
pub(super) async fn tree(
    opened: Opened,
    names: Vec<Vec<u8>>,
    shown: SnapshotPath,
    offset: u64,
    limit: Option<u32>,
) -> ServiceResult<TreePage> {
    let index = load_index(&opened).await?;
    let handle = Handle::current();
    let snapshot_id = opened.id;
    tokio::task::spawn_blocking(move || {
        let disk = open_disk(&opened, index, handle)?;
        if names.is_empty() {
            let layout = disk.layout().map_err(image_error)?;
            let entries: Vec<TreeEntry> = layout
                .partitions
                .iter()
                .map(|p| TreeEntry {
                    name: p.number.to_string().into_bytes(),
                    path: SnapshotPath::root().join(p.number.to_string().as_bytes()),
                    kind: EntryKind::Partition,
                    size: p.length,
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime_ns: 0,
                    link_target: None,
                    partition: Some(p.clone()),
                })
                .collect();
            let (total, entries) = page(entries, offset, limit);
            return Ok(TreePage {
                snapshot_id,
                path: shown,
                total,
                offset,
                entries,
                image: Some(layout),
            });
        }
        let (number, fs_path) = partition_path(&names)?;
        let volume = disk.open_ext4(number).map_err(image_error)?;
        let found = volume.stat(&fs_path).map_err(image_error)?;
        if found.kind != FsEntryKind::Dir {
            return Err(ServiceError::invalid(format!(
                "{shown:?} is not a directory: download it instead"
            )));
        }
        let listed = volume.list_dir(&fs_path).map_err(image_error)?;
        let entries: Vec<TreeEntry> = listed
            .iter()
            .map(|e| TreeEntry {
                name: e.name.clone(),
                path: shown.join(&e.name),
                kind: kind_of(e.kind),
                size: e.size,
                mode: u32::from(e.mode),
                uid: e.uid,
                gid: e.gid,
                mtime_ns: mtime_ns(e),
                link_target: e.symlink_target.clone(),
                partition: None,
            })
            .collect();
        let (total, entries) = page(entries, offset, limit);
        Ok(TreePage {
            snapshot_id,
            path: shown,
            total,
            offset,
            entries,
            image: None,
        })
    })
    .await
    .map_err(|err| ServiceError::internal("reading an image snapshot panicked", &err))?
}

/// A download from the ext2/3/4 file system of a partition: a file's bytes, or a
/// directory as a `.tar`. Checked (and the name and size known) before the first byte.
pub(super) async fn download(
    opened: Opened,
    names: Vec<Vec<u8>>,
    sent: Sent,
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    archive: Archive,
) -> ServiceResult<Download> {
    if names.is_empty() {
        return Err(ServiceError::invalid(
            "an image snapshot holds partitions: download a file or folder inside one (/1/etc), \
             or restore the whole image with the agent",
        ));
    }
    let (number, fs_path) = partition_path(&names)?;
    let index = load_index(&opened).await?;
    let handle = Handle::current();
    let (ready_tx, ready_rx) =
        tokio::sync::oneshot::channel::<ServiceResult<(String, DownloadKind, Option<u64>)>>();
    std::thread::Builder::new()
        .name("kura-image-download".into())
        .spawn(move || {
            let mut sent = sent;
            let checked = (|| {
                let disk = open_disk(&opened, index, handle.clone())?;
                let volume = disk.open_ext4(number).map_err(image_error)?;
                let entry = volume.stat(&fs_path).map_err(image_error)?;
                Ok::<_, ServiceError>((volume, entry))
            })();
            let (volume, entry) = match checked {
                Ok(found) => found,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            let name = if fs_path == b"/" {
                format!("partition-{number}")
            } else {
                entry.name_lossy().into_owned()
            };
            let outcome = match entry.kind {
                FsEntryKind::File => {
                    let _ = ready_tx.send(Ok((name, DownloadKind::File, Some(entry.size))));
                    send_file(&volume, &fs_path, &mut sent)
                }
                FsEntryKind::Dir => {
                    let format = archive.format();
                    let file_name = format!("{name}{}", format.extension());
                    let _ = ready_tx.send(Ok((file_name, DownloadKind::of_archive(format), None)));
                    send_archive(&volume, &fs_path, &tar_safe(&name), archive, &mut sent)
                }
                _ => {
                    let _ = ready_tx.send(Err(ServiceError::invalid(format!(
                        "{:?} is a {}: only files and folders can be downloaded",
                        String::from_utf8_lossy(&fs_path),
                        kind_of(entry.kind).as_str().replace('_', " ")
                    ))));
                    return;
                }
            };
            handle.block_on(sent.finish(outcome));
        })
        .map_err(|err| ServiceError::internal("cannot start a download thread", &err))?;
    let (file_name, kind, size) = ready_rx
        .await
        .map_err(|_| ServiceError::unavailable("the download stopped before it started"))??;
    Ok(Download {
        file_name,
        kind,
        size,
        body: rx,
    })
}

/// Pieces a file is sent in.
const PIECE: usize = 256 * 1024;

fn send_file(volume: &kura_image::Ext4Volume, path: &[u8], sent: &mut Sent) -> Result<(), Stop> {
    use std::io::Read;
    let mut reader = volume.open_file(path).map_err(image_error)?;
    let size = reader.size();
    let mut written = 0u64;
    loop {
        let mut buf = vec![0u8; PIECE];
        let n = reader
            .read(&mut buf)
            .map_err(|err| damaged("part of this file", err))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        written += n as u64;
        sent.blocking_send(buf)?;
    }
    if written != size {
        return Err(damaged("this file", "it ended before its recorded size").into());
    }
    Ok(())
}

fn send_archive(
    volume: &kura_image::Ext4Volume,
    root: &[u8],
    top: &[u8],
    mut archive: Archive,
    sent: &mut Sent,
) -> Result<(), Stop> {
    let mut stopped: Option<Stop> = None;
    let walked = volume.walk(root, |relative, entry| {
        if stopped.is_some() {
            return Ok(());
        }
        let mut path = top.to_vec();
        if !relative.is_empty() {
            if relative
                .split(|&b| b == b'/')
                .any(|name| !kura_image::extract::is_safe_name(name))
            {
                return Ok(());
            }
            path.push(b'/');
            path.extend_from_slice(relative);
        }
        let mut archive_entry = ArchiveEntry {
            path: &path,
            kind: ArchiveKind::Dir,
            mode: u32::from(entry.mode),
            uid: entry.uid.into(),
            gid: entry.gid.into(),
            mtime: entry.mtime,
        };
        let result = match entry.kind {
            FsEntryKind::Dir => sent.blocking_send(archive.start(&archive_entry)),
            FsEntryKind::File => {
                archive_entry.kind = ArchiveKind::File { size: entry.size };
                let mut source = root.to_vec();
                if !relative.is_empty() {
                    if source.last() != Some(&b'/') {
                        source.push(b'/');
                    }
                    source.extend_from_slice(relative);
                }
                sent.blocking_send(archive.start(&archive_entry))
                    .and_then(|()| {
                        sent.start_crc(&archive);
                        send_file(volume, &source, sent)
                    })
                    .and_then(|()| {
                        let crc = sent.take_crc();
                        sent.blocking_send(archive.end_file(crc))
                    })
            }
            FsEntryKind::Symlink => {
                let target = entry.symlink_target.clone().unwrap_or_default();
                archive_entry.kind = ArchiveKind::Symlink { target: &target };
                sent.blocking_send(archive.start(&archive_entry))
            }
            _ => Ok(()),
        };
        if let Err(stop) = result {
            stopped = Some(stop);
        }
        Ok(())
    });
    if let Some(stop) = stopped {
        return Err(stop);
    }
    walked.map_err(image_error)?;
    sent.blocking_send(archive.finish())
}
