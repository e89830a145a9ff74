//! The tenants' vaults as the service holds them: where each one lives, opening it once
//! and sharing it between requests, and the stored-bytes figure the quota is checked
//! against.
//!
//! Every tenant has one vault (`default`), reached only through a [`TenantScope`], under
//! `DATA/vaults/<tenant-id>/default/` (objects and catalog). Dedup happens inside it, so
//! never across tenants. Uploads are checked by the vault before they are stored: the
//! service trusts no agent's bytes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kura_format::{KeySlot, VaultConfig};
use kura_store::{StoreError, Vault};
use tokio::sync::Mutex;

use crate::tenancy::{TenantId, TenantScope};

/// One tenant's open vault and its running stored-bytes figure.
pub struct TenantVault {
    pub vault: Vault,
    /// Bytes of all packs, kept current by uploads and refreshed after GC.
    stored_bytes: AtomicU64,
}

impl TenantVault {
    async fn new(vault: Vault) -> Result<Self, StoreError> {
        let stored = vault.usage().await?.stored_bytes;
        Ok(TenantVault {
            vault,
            stored_bytes: AtomicU64::new(stored),
        })
    }

    /// Stored bytes after dedup and compression: what counts against the quota.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes.load(Ordering::Relaxed)
    }

    /// Counts a stored pack.
    pub fn add_stored(&self, bytes: u64) {
        self.stored_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Re-reads the figure from the catalog (after GC freed space).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let stored = self.vault.usage().await?.stored_bytes;
        self.stored_bytes.store(stored, Ordering::Relaxed);
        Ok(())
    }
}

/// All tenants' vaults of this server.
pub struct TenantVaults {
    root: PathBuf,
    open: Mutex<HashMap<TenantId, Arc<TenantVault>>>,
}

impl TenantVaults {
    /// Vaults under `root` (normally `DATA/vaults`).
    pub fn new(root: PathBuf) -> Self {
        TenantVaults {
            root,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, scope: &TenantScope) -> PathBuf {
        self.root.join(scope.tenant_id().as_str()).join("default")
    }

    /// The tenant's vault, or `None` when it has not been created yet.
    pub async fn get(&self, scope: &TenantScope) -> Result<Option<Arc<TenantVault>>, StoreError> {
        let mut open = self.open.lock().await;
        if let Some(v) = open.get(scope.tenant_id()) {
            return Ok(Some(Arc::clone(v)));
        }
        let vault = match Vault::open_local_checked(&self.dir(scope), true).await {
            Ok(v) => v,
            Err(StoreError::NoVault(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let vault = Arc::new(TenantVault::new(vault).await?);
        open.insert(scope.tenant_id().clone(), Arc::clone(&vault));
        Ok(Some(vault))
    }

    /// Creates the tenant's vault; refused when it exists.
    pub async fn create(
        &self,
        scope: &TenantScope,
        config: VaultConfig,
        slots: &[KeySlot],
    ) -> Result<Arc<TenantVault>, StoreError> {
        let mut open = self.open.lock().await;
        let vault = Vault::create_local_checked(&self.dir(scope), config, slots, true).await?;
        let vault = Arc::new(TenantVault::new(vault).await?);
        open.insert(scope.tenant_id().clone(), Arc::clone(&vault));
        Ok(vault)
    }
}
