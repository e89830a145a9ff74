//! The tenants' vaults as the service holds them: where each one lives, opening it once
//! and sharing it between requests, and the stored-bytes figure the quota is checked
//! against.
//!
//! Every tenant has one vault (`default`), reached only through a [`TenantScope`]. Dedup
//! happens inside it, so never across tenants. Uploads are checked by the vault before
//! they are stored: the service trusts no agent's bytes. Where vaults live follows the
//! service database:
//!
//! - **SQLite** (embedded): each vault is a directory `DATA/vaults/<tenant-id>/default/`
//!   with its own SQLite catalog and objects, so one tenant's writes never wait for
//!   another's database lock.
//! - **PostgreSQL** (scale-out): every catalog lives in the service's PostgreSQL database
//!   (vault id `<tenant-id>/default`, tables `vault_*` beside the service tables) and every
//!   object in one store — `DATA/objects` or an S3 bucket — under
//!   `t/<tenant-id>/v/default/`. With S3 nothing is on the server's disk, so several
//!   servers can share the vaults. (Each server keeps its own running stored-bytes figure
//!   per vault, read from the catalog when it first opens the vault.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kura_format::{KeySlot, VaultConfig};
use kura_store::{Catalog, ObjectLayout, RebuildReport, StoreError, StoredObjects, Vault};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::Mutex;

use crate::authz::TenantScope;
use crate::ids::TenantId;

/// An upload session whose agent has said nothing (no upload, no query, no heartbeat)
/// for this long stops holding its packs back from gc: agents send a heartbeat every
/// minute, so only a killed or cut-off backup goes this quiet.
pub const SESSION_IDLE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The one vault every tenant has so far.
const VAULT_NAME: &str = "default";

/// One tenant's open vault and its running stored-bytes figure.
pub struct TenantVault {
    pub vault: Vault,
    /// Bytes of all packs, kept current by uploads and refreshed after GC.
    stored_bytes: AtomicU64,
}

impl TenantVault {
    async fn new(vault: Vault) -> Result<Self, StoreError> {
        vault.set_session_idle_expiry(SESSION_IDLE_EXPIRY);
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

/// Where the vaults live, from the server's configuration.
#[derive(Clone)]
pub struct VaultStorage {
    /// The service database's URL: PostgreSQL keeps every catalog there.
    pub database_url: String,
    /// The service's data directory (`vaults/` with SQLite, `objects/` for local objects).
    pub data_dir: PathBuf,
    /// Where objects live when the database is PostgreSQL.
    pub objects: ObjectStorage,
}

/// Where vault objects live with PostgreSQL.
#[derive(Clone)]
pub enum ObjectStorage {
    /// `DATA/objects`.
    Local,
    /// An S3 bucket (explicit endpoint and credentials, never the cloud's metadata service).
    S3 {
        endpoint: String,
        region: String,
        bucket: String,
        access_key: String,
        secret_key: String,
        allow_http: bool,
    },
}

/// Why the vaults could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum VaultsError {
    #[error(
        "object_store = \"s3\" needs a PostgreSQL database_url: with SQLite each vault keeps its own directory"
    )]
    S3NeedsPostgres,
    #[error("cannot connect to the vault database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("vault storage: {0}")]
    Store(#[from] StoreError),
}

/// Where the vaults live (see the module docs).
enum Backend {
    /// One directory per vault under this root (`DATA/vaults`).
    Local { root: PathBuf },
    /// Catalogs in PostgreSQL, objects in one store.
    Shared {
        pool: PgPool,
        objects: Arc<dyn ObjectStore>,
        /// Where the objects are, in words: `DATA/objects` or `s3://BUCKET`.
        place: String,
        /// `DATA/objects` when the objects are on the server's disk.
        local_objects: Option<PathBuf>,
    },
}

/// All tenants' vaults of this server.
pub struct TenantVaults {
    backend: Backend,
    open: Mutex<HashMap<TenantId, Arc<TenantVault>>>,
}

impl TenantVaults {
    /// The vaults for `config`: on PostgreSQL when `database_url` is PostgreSQL (migrating
    /// the catalog tables), in `DATA/vaults` otherwise.
    pub async fn connect(config: &VaultStorage) -> Result<Self, VaultsError> {
        let url = &config.database_url;
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect_with(PgConnectOptions::from_str(url)?)
                .await?;
            kura_store::migrate_postgres(&pool).await?;
            let (objects, place, local_objects): (Arc<dyn ObjectStore>, _, _) = match &config.objects {
                ObjectStorage::Local => {
                    let dir = config.data_dir.join("objects");
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", dir.display())))?;
                    let store = LocalFileSystem::new_with_prefix(&dir).map_err(StoreError::from)?;
                    (Arc::new(store), dir.display().to_string(), Some(dir))
                }
                ObjectStorage::S3 {
                    endpoint,
                    region,
                    bucket,
                    access_key,
                    secret_key,
                    allow_http,
                } => (
                    kura_store::s3_store(endpoint, region, bucket, access_key, secret_key, *allow_http)?,
                    format!("s3://{bucket}"),
                    None,
                ),
            };
            Backend::Shared {
                pool,
                objects,
                place,
                local_objects,
            }
        } else if matches!(config.objects, ObjectStorage::S3 { .. }) {
            return Err(VaultsError::S3NeedsPostgres);
        } else {
            // Made now, so that the health probe finds it before the first vault.
            let root = config.data_dir.join("vaults");
            std::fs::create_dir_all(&root)
                .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", root.display())))?;
            Backend::Local { root }
        };
        Ok(TenantVaults {
            backend,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the tenant's vault, or creates it with `new` = (config, key slots).
    async fn open_vault(
        &self,
        scope: &TenantScope,
        new: Option<(VaultConfig, &[KeySlot])>,
    ) -> Result<Vault, StoreError> {
        let tenant = scope.tenant_id().as_str();
        match &self.backend {
            Backend::Local { root } => {
                let dir = root.join(tenant).join(VAULT_NAME);
                match new {
                    Some((config, slots)) => Vault::create_local_checked(&dir, config, slots, true).await,
                    None => Vault::open_local_checked(&dir, true).await,
                }
            }
            Backend::Shared { pool, objects, .. } => {
                let (objects, catalog) = shared_parts(pool, objects, tenant);
                let location = format!("tenant {tenant} vault {VAULT_NAME}");
                match new {
                    Some((config, slots)) => {
                        Vault::create(objects, catalog, config, slots, location, true).await
                    }
                    None => Vault::open(objects, catalog, location, true).await,
                }
            }
        }
    }

    /// Where the tenant's vault lives, in words (for its deletion record).
    /// Checks that the vaults' storage answers (the vault directory is there, or the object
    /// store replies, a missing probe key being a reply); answers where it is, in words.
    pub async fn probe(&self) -> Result<String, StoreError> {
        match &self.backend {
            Backend::Local { root } => match tokio::fs::metadata(root).await {
                Ok(meta) if meta.is_dir() => Ok(root.display().to_string()),
                Ok(_) => Err(StoreError::Storage(format!(
                    "{} is not a directory",
                    root.display()
                ))),
                Err(e) => Err(StoreError::Storage(format!(
                    "cannot read {}: {e}",
                    root.display()
                ))),
            },
            Backend::Shared { objects, place, .. } => {
                let probe = object_store::path::Path::from("kura-health-probe");
                match object_store::ObjectStoreExt::head(objects.as_ref(), &probe).await {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(place.clone()),
                    Err(e) => Err(StoreError::Storage(format!("{place} does not answer: {e}"))),
                }
            }
        }
    }

    pub fn location(&self, scope: &TenantScope) -> String {
        let tenant = scope.tenant_id().as_str();
        match &self.backend {
            Backend::Local { root } => root.join(tenant).display().to_string(),
            Backend::Shared { place, .. } => format!("{place}/t/{tenant}/"),
        }
    }

    /// What the tenant's vault holds: its objects in storage and the snapshots in its
    /// catalog (nothing when it has no vault).
    pub async fn measure(&self, scope: &TenantScope) -> Result<(StoredObjects, u64), StoreError> {
        let tenant = scope.tenant_id().as_str();
        let objects = match &self.backend {
            Backend::Local { root } => {
                let dir = root.join(tenant).join(VAULT_NAME).join("objects");
                if !dir.is_dir() {
                    return Ok((StoredObjects::default(), 0));
                }
                kura_store::stored_objects(&ObjectLayout::local(&dir)?).await?
            }
            Backend::Shared { objects, .. } => {
                kura_store::stored_objects(&everything_of(objects, tenant)).await?
            }
        };
        let snapshots = match self.get(scope).await {
            Ok(Some(vault)) => vault.vault.usage().await?.snapshots,
            Ok(None) => 0,
            // A vault too damaged to open still has objects to count and erase.
            Err(err) => {
                tracing::warn!(tenant, error = %err, "cannot open the vault to count its snapshots");
                0
            }
        };
        Ok((objects, snapshots))
    }

    /// Erases the tenant's vault: every object, every catalog row, and what the server
    /// keeps on its disk for it. May run again after being cut off.
    pub async fn erase(&self, scope: &TenantScope) -> Result<(), StoreError> {
        let tenant = scope.tenant_id().as_str();
        self.open.lock().await.remove(scope.tenant_id());
        let leftovers = match &self.backend {
            Backend::Local { root } => Some(root.join(tenant)),
            Backend::Shared {
                pool,
                objects,
                local_objects,
                ..
            } => {
                let catalog = shared_parts(pool, objects, tenant).1;
                kura_store::erase(&everything_of(objects, tenant), &catalog).await?;
                // Staging files of cut-off writes, and the emptied folders.
                local_objects.as_ref().map(|dir| dir.join("t").join(tenant))
            }
        };
        if let Some(dir) = leftovers {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Storage(format!(
                        "cannot delete {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The stored bytes of the vaults this process has open, by tenant (live figures,
    /// for the metrics; opening every vault just to report would cost a scrape dearly).
    pub async fn open_stored_bytes(&self) -> HashMap<TenantId, u64> {
        self.open
            .lock()
            .await
            .iter()
            .map(|(tenant, vault)| (tenant.clone(), vault.stored_bytes()))
            .collect()
    }

    /// The tenant's vault, or `None` when it has not been created yet.
    pub async fn get(&self, scope: &TenantScope) -> Result<Option<Arc<TenantVault>>, StoreError> {
        let mut open = self.open.lock().await;
        if let Some(v) = open.get(scope.tenant_id()) {
            return Ok(Some(Arc::clone(v)));
        }
        let vault = match self.open_vault(scope, None).await {
            Ok(v) => v,
            Err(StoreError::NoVault(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let vault = Arc::new(TenantVault::new(vault).await?);
        open.insert(scope.tenant_id().clone(), Arc::clone(&vault));
        Ok(Some(vault))
    }

    /// Rebuilds the tenant's vault catalog from its objects ([`Vault::rebuild_catalog`])
    /// and serves the rebuilt vault from then on; `None` when storage holds no vault of
    /// the tenant. Other tenants' vaults stay available while it reads.
    pub async fn rebuild_catalog(&self, scope: &TenantScope) -> Result<Option<RebuildReport>, StoreError> {
        let tenant = scope.tenant_id().as_str();
        self.open.lock().await.remove(scope.tenant_id());
        let rebuilt = match &self.backend {
            Backend::Local { root } => Vault::rebuild_local(&root.join(tenant).join(VAULT_NAME), true).await,
            Backend::Shared { pool, objects, .. } => {
                let (objects, catalog) = shared_parts(pool, objects, tenant);
                let location = format!("tenant {tenant} vault {VAULT_NAME}");
                Vault::rebuild_catalog(objects, catalog, location, true).await
            }
        };
        let (vault, report) = match rebuilt {
            Ok(done) => done,
            Err(StoreError::NoVault(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let vault = Arc::new(TenantVault::new(vault).await?);
        self.open.lock().await.insert(scope.tenant_id().clone(), vault);
        Ok(Some(report))
    }

    /// Creates the tenant's vault; refused when it exists.
    pub async fn create(
        &self,
        scope: &TenantScope,
        config: VaultConfig,
        slots: &[KeySlot],
    ) -> Result<Arc<TenantVault>, StoreError> {
        let mut open = self.open.lock().await;
        let vault = self.open_vault(scope, Some((config, slots))).await?;
        let vault = Arc::new(TenantVault::new(vault).await?);
        open.insert(scope.tenant_id().clone(), Arc::clone(&vault));
        Ok(vault)
    }
}

/// The objects and catalog of a tenant's vault in the shared store.
fn shared_parts(pool: &PgPool, objects: &Arc<dyn ObjectStore>, tenant: &str) -> (ObjectLayout, Catalog) {
    (
        ObjectLayout::new(
            Arc::clone(objects),
            ObjectPath::from(format!("t/{tenant}/v/{VAULT_NAME}")),
        ),
        Catalog::postgres(pool.clone(), &format!("{tenant}/{VAULT_NAME}")),
    )
}

/// Every object of the tenant in the shared store (`t/<tenant>/`: all its vaults).
fn everything_of(objects: &Arc<dyn ObjectStore>, tenant: &str) -> ObjectLayout {
    ObjectLayout::new(Arc::clone(objects), ObjectPath::from(format!("t/{tenant}")))
}
