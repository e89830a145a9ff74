//! Where a vault's objects live in object storage: everything under one prefix
//! (`t/<tenant>/v/<vault>/` on the service, the `objects/` folder of a local vault), and the
//! stores themselves (a local folder, or S3 via [`s3_store`]).

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;

use kura_format::{PackId, SnapshotId};
use object_store::StaticCredentialProvider;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::pack_file::{PackFile, local_io_error};
use crate::{Result, StoreError};

/// The object names of one vault.
#[derive(Clone, Debug)]
pub struct ObjectLayout {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The folder `store` keeps its objects in, when it is a local one: ranges are then
    /// read straight from the files (see [`read_ranges`](Self::read_ranges)).
    local_dir: Option<PathBuf>,
}

impl ObjectLayout {
    /// Objects of the vault under `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        ObjectLayout {
            store,
            prefix,
            local_dir: None,
        }
    }

    /// Objects of the vault in the local folder `dir` (a [`LocalFileSystem`] over it).
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(ObjectLayout {
            store: Arc::new(store),
            prefix: Path::default(),
            local_dir: Some(dir.to_path_buf()),
        })
    }

    /// The bytes of `ranges` of object `path`, in order. From a local folder they are read
    /// on one blocking thread into buffers that are not zeroed first; `object_store`'s
    /// local reads zero each buffer before reading into it, which restores and the
    /// server's blob reads paid for with every byte.
    pub async fn read_ranges(&self, path: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let Some(dir) = &self.local_dir else {
            return Ok(self.store.get_ranges(path, ranges).await?);
        };
        let file = dir.join(path.as_ref());
        let ranges = ranges.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&file).map_err(|e| local_io_error("read", &file, e))?;
            ranges
                .iter()
                .map(|r| {
                    let len = (r.end - r.start) as usize;
                    let mut buf = Vec::with_capacity(len);
                    f.seek(SeekFrom::Start(r.start))
                        .and_then(|_| (&mut f).take(len as u64).read_to_end(&mut buf))
                        .map_err(|e| local_io_error("read", &file, e))?;
                    if buf.len() != len {
                        return Err(StoreError::Storage(format!(
                            "{} ends before byte {}",
                            file.display(),
                            r.end
                        )));
                    }
                    Ok(Bytes::from(buf))
                })
                .collect()
        })
        .await
        .map_err(|e| StoreError::Storage(format!("object read stopped: {e}")))?
    }

    /// A pack to fill straight into the local folder (see [`PackFile`]), or `None` when the
    /// objects are not in a local folder.
    pub(crate) fn new_pack_file(&self) -> Result<Option<PackFile>> {
        let Some(dir) = &self.local_dir else {
            return Ok(None);
        };
        PackFile::create(&dir.join(self.packs().as_ref())).map(Some)
    }

    /// The file of pack `id` in the local folder, when the objects are in one.
    pub(crate) fn local_pack_path(&self, id: &PackId) -> Option<PathBuf> {
        self.local_dir
            .as_ref()
            .map(|dir| dir.join(self.pack(id).as_ref()))
    }

    /// Deletes, in a local folder, the staging files of writes cut off before `before_ms`
    /// (Unix ms). [`LocalFileSystem`] writes `<name>#<n>` and renames it into place; a
    /// killed process leaves it behind, and no listing shows it, so it would pin its space
    /// (up to a whole pack) for ever. Returns how many it deleted.
    pub(crate) async fn delete_stale_staging(&self, before_ms: i64) -> Result<u64> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(0);
        };
        let before = std::time::UNIX_EPOCH + std::time::Duration::from_millis(before_ms.max(0) as u64);
        tokio::task::spawn_blocking(move || {
            let mut deleted = 0;
            let mut folders = vec![dir];
            while let Some(folder) = folders.pop() {
                for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() {
                        folders.push(entry.path());
                    } else if entry.file_name().to_string_lossy().contains('#')
                        && meta.modified().is_ok_and(|m| m < before)
                        && std::fs::remove_file(entry.path()).is_ok()
                    {
                        deleted += 1;
                    }
                }
            }
            deleted
        })
        .await
        .map_err(|e| StoreError::Storage(format!("sweeping cut-off writes stopped: {e}")))
    }

    /// An object's bytes, or `None` when there is no such object.
    pub(crate) async fn get_if_present(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn child(&self, parts: &[&str]) -> Path {
        let mut p = self.prefix.clone();
        for part in parts {
            p = p.clone().join(*part);
        }
        p
    }

    /// The vault configuration.
    pub fn config(&self) -> Path {
        self.child(&["config"])
    }

    /// A key slot.
    pub fn key_slot(&self, id: &str) -> Path {
        self.child(&["keys", id])
    }

    /// Folder of key slots.
    pub fn key_slots(&self) -> Path {
        self.child(&["keys"])
    }

    /// Folder of tombstones: one per snapshot forgotten and not yet collected, so that a
    /// catalog rebuilt from storage keeps it forgotten.
    pub fn tombstones(&self) -> Path {
        self.child(&["forgotten"])
    }

    /// A forgotten snapshot's tombstone.
    pub fn tombstone(&self, id: &SnapshotId) -> Path {
        self.child(&["forgotten", &id.to_hex()])
    }

    /// Folder of all packs.
    pub fn packs(&self) -> Path {
        self.child(&["packs"])
    }

    /// A pack, fanned out by its first two hex digits.
    pub fn pack(&self, id: &PackId) -> Path {
        let hex = id.to_hex();
        self.child(&["packs", &hex[..2], &hex])
    }

    /// Folder of manifests.
    pub fn manifests(&self) -> Path {
        self.child(&["snapshots"])
    }

    /// A snapshot manifest.
    pub fn manifest(&self, id: &SnapshotId) -> Path {
        self.child(&["snapshots", &id.to_hex()])
    }

    /// Folder of reference lists.
    pub fn reference_lists(&self) -> Path {
        self.child(&["refs"])
    }

    /// A snapshot's reference list.
    pub fn references(&self, id: &SnapshotId) -> Path {
        self.child(&["refs", &id.to_hex()])
    }
}

/// An S3-compatible store (Garage, MinIO, AWS) at `endpoint` (e.g. `http://127.0.0.1:3900`),
/// with path-style requests and static credentials. The credentials are always explicit:
/// without them the S3 client would ask the cloud metadata address, which on a shared
/// host answers for someone else. `allow_http` permits a plain-HTTP endpoint.
pub fn s3_store(
    endpoint: &str,
    region: &str,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    allow_http: bool,
) -> Result<Arc<dyn ObjectStore>> {
    if access_key.is_empty() || secret_key.is_empty() {
        return Err(StoreError::Storage(format!(
            "S3 bucket {bucket} at {endpoint}: an access key and a secret key are required"
        )));
    }
    let credentials = StaticCredentialProvider::new(AwsCredential {
        key_id: access_key.to_string(),
        secret_key: secret_key.to_string(),
        token: None,
    });
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region(region)
        .with_bucket_name(bucket)
        .with_credentials(Arc::new(credentials))
        .with_virtual_hosted_style_request(false)
        .with_allow_http(allow_http)
        .build()?;
    Ok(Arc::new(store))
}
