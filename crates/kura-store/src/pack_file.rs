//! Packs written straight into a local vault's folder as their blobs come ([`PackFile`]),
//! instead of whole from a 16 MiB buffer: a backup then holds no pack in memory, and each
//! blob reaches the page cache while it is still in the CPU's cache (the kernel's copies
//! of a 1 GiB backup went from 1.39 to 0.48 CPU-s; see `docs/benchmarks.md`).
//!
//! The file is staged as `packs/new-<random>#1` (the `#<digits>` form `object_store`
//! uses for unfinished writes: listings skip it and GC sweeps it when a run was killed),
//! and renamed to its id once finished ([`crate::Vault::put_pack_file`]).

use std::fs::File;
use std::io::{BufWriter, ErrorKind};
use std::path::{Path, PathBuf};

use kura_format::{BlobKind, ChunkId, PackEntry, PackId, PackStream};

use crate::{Result, StoreError};

/// Small blobs (trees, small files) are gathered into writes of this size; larger ones
/// are written as they are.
const WRITE_BUFFER: usize = 64 << 10;

/// A pack being filled in a local vault's folder; see the module docs. Dropped unfinished,
/// it deletes its file.
pub struct PackFile {
    stream: Option<PackStream<BufWriter<File>>>,
    staging: PathBuf,
}

/// A [`PackFile`] written to its end, not yet in place. Dropped unpublished, it deletes
/// its file.
pub(crate) struct FinishedPack {
    pub(crate) id: PackId,
    /// Bytes of the whole pack, trailer included.
    pub(crate) size: u64,
    pub(crate) entries: Vec<PackEntry>,
    staging: PathBuf,
}

impl PackFile {
    /// A new, empty pack file in `packs_dir`.
    pub(crate) fn create(packs_dir: &Path) -> Result<PackFile> {
        std::fs::create_dir_all(packs_dir).map_err(|e| local_io_error("create", packs_dir, e))?;
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| StoreError::Storage(format!("random source failed: {e}")))?;
        let staging = packs_dir.join(format!("new-{}#1", hex::encode(raw)));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&staging)
            .map_err(|e| local_io_error("create", &staging, e))?;
        Ok(PackFile {
            stream: Some(PackStream::new(BufWriter::with_capacity(WRITE_BUFFER, file))),
            staging,
        })
    }

    fn stream(&self) -> &PackStream<BufWriter<File>> {
        self.stream
            .as_ref()
            .expect("a pack file is only taken apart by finish")
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, blob: &[u8], raw_length: u32) -> Result<()> {
        let stream = self
            .stream
            .as_mut()
            .expect("a pack file is only taken apart by finish");
        stream
            .add(id, kind, blob, raw_length)
            .map_err(|e| local_io_error("write", &self.staging, e))
    }

    /// Bytes of blobs added so far.
    pub fn len(&self) -> usize {
        self.stream().entries().len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.stream().entries().is_empty()
    }

    /// Whether the pack has reached its target size.
    pub fn is_full(&self) -> bool {
        self.stream().entries().is_full()
    }

    /// Writes the trailer and closes the file, which stays staged.
    pub(crate) fn finish(mut self) -> Result<FinishedPack> {
        let stream = self.stream.take().expect("finished once");
        let staging = std::mem::take(&mut self.staging);
        let finished = stream.finish().and_then(|p| {
            // Closed here, so that a write error shows before the pack is indexed.
            p.out.into_inner().map_err(|e| e.into_error())?;
            Ok(FinishedPack {
                id: p.id,
                size: p.size,
                entries: p.entries,
                staging: staging.clone(),
            })
        });
        finished.map_err(|e| {
            let _ = std::fs::remove_file(&staging);
            local_io_error("write", &staging, e)
        })
    }
}

impl Drop for PackFile {
    fn drop(&mut self) {
        remove_staged(&self.staging);
    }
}

impl FinishedPack {
    /// Moves the file to `target`, the pack's object path.
    pub(crate) async fn publish(mut self, target: PathBuf) -> Result<()> {
        let staging = std::mem::take(&mut self.staging);
        tokio::task::spawn_blocking(move || {
            let dir = target.parent().expect("a pack path has a folder");
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::rename(&staging, &target))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&staging);
                    local_io_error("move into place", &target, e)
                })
        })
        .await
        .map_err(|e| StoreError::Storage(format!("storing a pack stopped: {e}")))?
    }
}

impl Drop for FinishedPack {
    fn drop(&mut self) {
        remove_staged(&self.staging);
    }
}

/// Deletes a staged file that was not moved into place (empty path: nothing staged).
fn remove_staged(staging: &Path) {
    if !staging.as_os_str().is_empty() {
        let _ = std::fs::remove_file(staging);
    }
}

/// A failed file operation on a local vault's objects (a full disk is [`StoreError::NoSpace`]).
pub(crate) fn local_io_error(action: &str, file: &Path, e: std::io::Error) -> StoreError {
    let msg = format!("cannot {action} {}: {e}", file.display());
    if e.kind() == ErrorKind::StorageFull {
        StoreError::NoSpace(msg)
    } else {
        StoreError::Storage(msg)
    }
}

#[cfg(test)]
mod tests {
    use kura_format::VaultConfig;

    use crate::Vault;

    use super::*;

    /// Every file under `dir`, relative to it.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut folders = vec![dir.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    out.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pack_written_as_a_file_is_stored_like_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let config = VaultConfig::new(false, 0).unwrap();
        let (codec, _) = config.codec(None).unwrap();
        let vault = Vault::create_local(dir.path(), config, &[]).await.unwrap();
        let session = vault.open_session(None).await.unwrap();

        let mut file = vault
            .new_pack_file()
            .unwrap()
            .expect("a local vault writes pack files");
        let chunks: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("chunk {i} ").repeat(200).into_bytes())
            .collect();
        for data in &chunks {
            let id = codec.id(data);
            file.add(
                id,
                BlobKind::Data,
                &codec.seal(&id, data).unwrap(),
                data.len() as u32,
            )
            .unwrap();
        }
        // A pack dropped unfinished leaves nothing behind.
        drop(vault.new_pack_file().unwrap());

        let receipt = vault.put_pack_file(&session, file).await.unwrap();
        assert_eq!((receipt.blobs, receipt.new_chunks), (3, 3));
        let ids: Vec<ChunkId> = chunks.iter().map(|d| codec.id(d)).collect();
        assert!(vault.missing(&session, &ids).await.unwrap().is_empty());
        for (blob, (id, data)) in vault
            .read_blobs(&ids)
            .await
            .unwrap()
            .iter()
            .zip(ids.iter().zip(&chunks))
        {
            assert_eq!(&codec.open(id, blob).unwrap(), data);
        }
        let hex = receipt.pack_id.to_hex();
        let objects = dir.path().join("objects");
        assert_eq!(
            files(&objects.join("packs")),
            vec![format!("{}/{hex}", &hex[..2])]
        );
        let stored = std::fs::read(objects.join("packs").join(&hex[..2]).join(&hex)).unwrap();
        assert_eq!(
            (PackId::of(&stored), stored.len() as u64),
            (receipt.pack_id, receipt.stored_bytes)
        );
    }
}
