//! Erasing a whole vault: every object under its prefix and every catalog row, for the
//! purge of a terminated tenant. [`stored_objects`] counts first, so the caller can record
//! what there was; [`erase`] may be cut off and run again until it has nothing left.
//!
//! Neither needs an open [`Vault`](crate::Vault): a vault whose configuration object is
//! lost or damaged must still be erasable.

use futures::{StreamExt, TryStreamExt};

use crate::catalog::{Catalog, query};
use crate::{ObjectLayout, Result};

/// How many objects, and how many bytes, a vault holds in object storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredObjects {
    pub objects: u64,
    pub bytes: u64,
}

/// Every catalog table; each statement is bound to the one vault.
const CATALOG_DELETES: [&str; 7] = [
    "DELETE FROM vault_pending_packs WHERE vault = $1",
    "DELETE FROM vault_sessions WHERE vault = $1",
    "DELETE FROM vault_snapshots WHERE vault = $1",
    "DELETE FROM vault_chunks WHERE vault = $1",
    "DELETE FROM vault_packs WHERE vault = $1",
    "DELETE FROM vault_key_slots WHERE vault = $1",
    "DELETE FROM vault_meta WHERE vault = $1",
];

/// The objects under `objects`' prefix, counted from a listing of the store.
pub async fn stored_objects(objects: &ObjectLayout) -> Result<StoredObjects> {
    let mut found = StoredObjects::default();
    let mut list = objects.store.list(Some(&objects.prefix));
    while let Some(meta) = list.try_next().await? {
        found.objects += 1;
        found.bytes += meta.size;
    }
    Ok(found)
}

/// Deletes every object under `objects`' prefix (in batches where the store allows),
/// then every row of `catalog`'s vault in one transaction. Answers what it deleted in
/// this run: a run after one that was cut off deletes, and counts, only the rest.
pub async fn erase(objects: &ObjectLayout, catalog: &Catalog) -> Result<StoredObjects> {
    let listed: Vec<object_store::ObjectMeta> =
        objects.store.list(Some(&objects.prefix)).try_collect().await?;
    let deleted = StoredObjects {
        objects: listed.len() as u64,
        bytes: listed.iter().map(|meta| meta.size).sum(),
    };
    let paths = futures::stream::iter(listed.into_iter().map(|meta| Ok(meta.location))).boxed();
    let mut gone = objects.store.delete_stream(paths);
    while let Some(outcome) = gone.next().await {
        match outcome {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut tx = catalog.begin().await?;
    for statement in CATALOG_DELETES {
        query(statement).execute(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}
