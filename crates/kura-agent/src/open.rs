//! Unlocking a vault: finding the key slot a passphrase opens, and building the codec and
//! chunker every operation uses.

use std::sync::Arc;

use kura_format::keys::KdfParams;
use kura_format::tree::Tree;
use kura_format::{
    BlobCodec, ChunkId, FileChunker, FormatError, KeySlot, MasterKey, RecoveryKey, VaultConfig,
};
use tokio::runtime::Handle;

use crate::{AgentError, Repository, Result};

/// A vault ready for work: the repository plus, for encrypted vaults, the key.
#[derive(Clone)]
pub struct OpenVault {
    pub repo: Arc<dyn Repository>,
    pub codec: Arc<BlobCodec>,
    pub chunker: Arc<FileChunker>,
    pub key: Option<MasterKey>,
    /// Runs the repository's async calls from worker threads.
    pub handle: Handle,
}

impl OpenVault {
    /// Opens `repo`. `passphrase` is asked for only when the vault is encrypted.
    pub async fn unlock(
        repo: Arc<dyn Repository>,
        passphrase: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let config = repo.config().clone();
        let key = if config.encrypted {
            let pass = passphrase()?;
            let slots = repo.key_slots().await?;
            Some(open_any_slot(&slots, &pass)?)
        } else {
            None
        };
        let (codec, chunker) = config.codec(key.as_ref())?;
        Ok(OpenVault {
            repo,
            codec: Arc::new(codec),
            chunker: Arc::new(chunker),
            key,
            handle: Handle::current(),
        })
    }

    /// The vault configuration.
    pub fn config(&self) -> &VaultConfig {
        self.repo.config()
    }

    /// Reads and decodes one tree (async context).
    pub async fn load_tree(&self, id: &ChunkId) -> Result<Tree> {
        Ok(Tree::decode(&self.read_plain(id).await?)?)
    }

    /// Reads one blob and opens it: the plaintext of chunk `id` (async context).
    pub async fn read_plain(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let blob = self.repo.read_blobs(std::slice::from_ref(id)).await?.remove(0);
        Ok(self.codec.open(id, &blob)?)
    }

    /// Reads and decodes several trees with one request (async context).
    pub async fn load_trees(&self, ids: &[ChunkId]) -> Result<Vec<Tree>> {
        let blobs = self.repo.read_blobs(ids).await?;
        ids.iter()
            .zip(blobs)
            .map(|(id, blob)| Ok(Tree::decode(&self.codec.open(id, &blob)?)?))
            .collect()
    }

    /// Reads and decodes one tree from a worker thread.
    pub fn load_tree_blocking(&self, id: &ChunkId) -> Result<Tree> {
        self.handle.block_on(self.load_tree(id))
    }
}

/// The master key from whichever slot `passphrase` opens ([`kura_format::keys::open_any_slot`]).
fn open_any_slot(slots: &[KeySlot], passphrase: &[u8]) -> Result<MasterKey> {
    match kura_format::keys::open_any_slot(slots, passphrase) {
        Err(FormatError::WrongPassphrase) => Err(AgentError::WrongPassphrase),
        other => Ok(other?),
    }
}

/// A key slot of one machine's own, for unattended unlock: opened by a fresh random
/// secret (a recovery-kind slot, so no Argon2 on every run) that the agent keeps in its
/// config file. Answers the slot and the secret's text.
pub fn machine_key_slot(master: &MasterKey, machine_name: &str) -> Result<(KeySlot, String)> {
    let now = crate::now_ns() / 1_000_000_000;
    let secret = RecoveryKey::generate()?;
    let mut slot = KeySlot::for_recovery(master, &secret, now)?;
    slot.label = format!("machine {machine_name}");
    Ok((slot, secret.to_string()))
}

/// A new vault's configuration and key slots. For an encrypted vault, also the recovery
/// key, which the caller must show once: it is stored nowhere else.
pub fn init_vault(
    encrypted: bool,
    passphrase: Option<&[u8]>,
    kdf: KdfParams,
) -> Result<(VaultConfig, Vec<KeySlot>, Option<RecoveryKey>)> {
    let now = crate::now_ns() / 1_000_000_000;
    let config = VaultConfig::new(encrypted, now)?;
    if !encrypted {
        return Ok((config, Vec::new(), None));
    }
    let pass = passphrase.ok_or_else(|| AgentError::Usage("an encrypted vault needs a passphrase".into()))?;
    let master = MasterKey::generate()?;
    let recovery = RecoveryKey::generate()?;
    let slots = vec![
        KeySlot::for_passphrase(&master, pass, "initial passphrase", kdf, now)?,
        KeySlot::for_recovery(&master, &recovery, now)?,
    ];
    Ok((config, slots, Some(recovery)))
}
