//! [`VaultImage`]: the bytes of an image snapshot read at any offset, straight from the
//! vault, without restoring the image: [`kura_format::ImageReader`] (with its segment and
//! chunk caches) over the agent's repository.

use kura_format::random_access::{ChunkSource, ImageReader};
use kura_format::{ChunkId, SnapshotId};

use super::index_of;
use crate::{AgentError, OpenVault, Result};

/// Plaintext chunks of the agent's vault, read blocking.
struct VaultChunks(OpenVault);

impl ChunkSource for VaultChunks {
    type Error = AgentError;

    fn read_plain(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.0.handle.block_on(self.0.read_plain(id))
    }
}

/// Random access to an image snapshot.
pub struct VaultImage(ImageReader<VaultChunks>);

impl VaultImage {
    /// Opens image snapshot `id`.
    pub async fn open(vault: &OpenVault, id: &SnapshotId) -> Result<Self> {
        let index = index_of(vault, id).await?;
        Ok(VaultImage(ImageReader::new(VaultChunks(vault.clone()), index)))
    }

    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.0.size()
    }

    /// Fills `buf` from `offset`; reading past the end is an error. Blocks on the vault:
    /// call from a thread outside the async runtime.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0.read_exact_at(offset, buf)
    }
}
