//! Rebuilding a vault's catalog from its objects: after the catalog is lost (a deleted
//! `catalog.db`, rows dropped from the service database), or when it is older than the
//! objects (the service database restored from a copy made before the latest backups).
//!
//! Storage holds everything the catalog derives from: the configuration and key slots,
//! every pack with the trailer that lists its chunks, every snapshot's manifest and
//! reference list, and a tombstone for every snapshot forgotten but not yet collected.
//! A rebuild brings the catalog in line with them: it adds what storage has and the
//! catalog lacks, and drops rows whose objects are gone. It may run while backups run: a
//! row is dropped only after its object is asked for once more by name, and everything it
//! adds is added the way an upload would (idempotent upserts).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path as FsPath;
use std::str::FromStr;

use futures::TryStreamExt;
use kura_format::pack::parse_pack;
use kura_format::{KeySlot, Manifest, PackId, ReferenceList, SnapshotId, VaultConfig};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::catalog::{Catalog, query};
use crate::vault::{insert_snapshot, pack_bytes, stored_config};
use crate::{ObjectLayout, Result, StoreError, Vault, now_ms};

/// What a rebuild found in storage and changed in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RebuildReport {
    /// Whether the vault's configuration had to be read back from storage.
    pub config_restored: bool,
    pub key_slots_restored: u64,
    /// Packs in storage the catalog did not know, now indexed.
    pub packs_indexed: u64,
    pub chunks_indexed: u64,
    /// Packs in storage that could not be indexed (bytes not matching the name, or an
    /// unreadable trailer): left for GC, their chunks missing.
    pub packs_unreadable: Vec<String>,
    /// Catalog packs whose object is gone: marked damaged and their chunks bad, as
    /// verify marks a lost pack (backups upload those chunks again; GC removes the rows).
    pub packs_missing: u64,
    /// Snapshots in storage the catalog did not know, now listed again.
    pub snapshots_restored: u64,
    /// Of those, snapshots that had been forgotten (a tombstone): kept forgotten, for GC.
    pub snapshots_restored_forgotten: u64,
    /// Snapshots whose manifest or reference list is unreadable: not listed.
    pub snapshots_unreadable: Vec<String>,
    /// Catalog snapshots whose manifest is gone: dropped.
    pub snapshots_dropped: u64,
    /// Live snapshots after the rebuild, and those among them that reference a chunk the
    /// vault no longer holds (restorable only in part; never used as a parent).
    pub snapshots: u64,
    pub snapshots_incomplete: Vec<String>,
}

impl Vault {
    /// Rebuilds the catalog of the vault stored in `objects` into `db` (empty, or holding
    /// an older or damaged copy of it) and opens the vault. Fails with
    /// [`StoreError::NoVault`] when storage holds no vault configuration.
    pub async fn rebuild_catalog(
        objects: ObjectLayout,
        db: Catalog,
        location: String,
        verify_uploads: bool,
    ) -> Result<(Vault, RebuildReport)> {
        let mut report = RebuildReport::default();
        if stored_config(&db).await?.is_none() {
            let Some(bytes) = objects.get_if_present(&objects.config()).await? else {
                return Err(StoreError::NoVault(format!(
                    "{location} (storage holds no vault configuration to rebuild from)"
                )));
            };
            VaultConfig::decode(&bytes)?;
            query(
                "INSERT INTO vault_meta (vault, key, value) VALUES ($1, 'config', $2) ON CONFLICT DO NOTHING",
            )
            .bind(bytes.as_ref())
            .execute(&db)
            .await?;
            report.config_restored = true;
        }
        let vault = Vault::open(objects, db, location, verify_uploads).await?;
        vault.reconcile(&mut report).await?;
        Ok((vault, report))
    }

    /// [`Vault::rebuild_catalog`] for a local vault (`objects/` beside `catalog.db`), making
    /// a new `catalog.db` when it is gone.
    pub async fn rebuild_local(dir: &FsPath, verify_uploads: bool) -> Result<(Vault, RebuildReport)> {
        if !dir.join("objects").is_dir() {
            return Err(StoreError::NoVault(format!(
                "{} (no objects folder to rebuild from)",
                dir.display()
            )));
        }
        let (objects, db) = Self::local_parts(dir, true).await?;
        let (vault, report) =
            Self::rebuild_catalog(objects, db, dir.display().to_string(), verify_uploads).await?;
        Ok((vault.with_session_locks(dir), report))
    }

    async fn reconcile(&self, report: &mut RebuildReport) -> Result<()> {
        self.restore_key_slots(report).await?;
        self.reconcile_packs(report).await?;
        self.reconcile_snapshots(report).await?;
        let live: Vec<(String,)> = query(
            "SELECT id FROM vault_snapshots WHERE vault = $1 AND deleted_ms IS NULL ORDER BY time_ns, id",
        )
        .fetch_all(self.db())
        .await?;
        report.snapshots = live.len() as u64;
        for (id,) in live {
            if self.is_damaged(&SnapshotId::from_str(&id)?).await? {
                report.snapshots_incomplete.push(id);
            }
        }
        Ok(())
    }

    async fn restore_key_slots(&self, report: &mut RebuildReport) -> Result<()> {
        let o = self.objects();
        for name in list_names(o, &o.key_slots()).await? {
            let Some(bytes) = o.get_if_present(&o.key_slot(&name)).await? else {
                continue;
            };
            let slot = KeySlot::decode(&bytes)?;
            report.key_slots_restored += query(
                "INSERT INTO vault_key_slots (vault, id, slot) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(slot.id.as_str())
            .bind(bytes.as_ref())
            .execute(self.db())
            .await?;
        }
        Ok(())
    }

    async fn reconcile_packs(&self, report: &mut RebuildReport) -> Result<()> {
        let o = self.objects();
        let stored = list_names(o, &o.packs()).await?;
        let rows: Vec<(Vec<u8>, bool)> = query("SELECT id, damaged FROM vault_packs WHERE vault = $1")
            .fetch_all(self.db())
            .await?;
        let mut known = HashSet::new();
        let mut sound = Vec::new();
        for (raw, damaged) in &rows {
            let id = pack_bytes(raw)?;
            known.insert(id);
            if !damaged {
                sound.push(id);
            }
        }
        for name in &stored {
            let Ok(id) = PackId::from_str(name) else {
                report.packs_unreadable.push(name.clone());
                continue;
            };
            if known.contains(&id.0) {
                continue;
            }
            // Gone since the listing: GC deleted it.
            let Some(bytes) = o.get_if_present(&o.pack(&id)).await? else {
                continue;
            };
            match parse_pack(&bytes) {
                Ok(entries) if PackId::of(&bytes) == id => {
                    report.chunks_indexed += self.index_pack(&id, bytes.len() as u64, &entries, None).await?;
                    report.packs_indexed += 1;
                }
                _ => report.packs_unreadable.push(name.clone()),
            }
        }
        let mut missing = Vec::new();
        for raw in sound {
            let id = PackId(raw);
            if stored.contains(&id.to_hex()) || exists(o, &o.pack(&id)).await? {
                continue;
            }
            // Its chunks first: a pack marked damaged is what a later run skips.
            query("UPDATE vault_chunks SET bad = TRUE WHERE vault = $1 AND pack = $2")
                .bind(id.0.as_slice())
                .execute(self.db())
                .await?;
            missing.push(id);
        }
        self.mark_damaged_packs(&missing).await?;
        report.packs_missing += missing.len() as u64;
        Ok(())
    }

    async fn reconcile_snapshots(&self, report: &mut RebuildReport) -> Result<()> {
        let o = self.objects();
        let manifests = list_names(o, &o.manifests()).await?;
        let forgotten = list_names(o, &o.tombstones()).await?;
        let known: Vec<(String, bool)> =
            query("SELECT id, deleted_ms IS NOT NULL FROM vault_snapshots WHERE vault = $1")
                .fetch_all(self.db())
                .await?;
        let known: BTreeMap<String, bool> = known.into_iter().collect();
        let now = now_ms();
        for name in &manifests {
            let tombstone = forgotten.contains(name);
            if let Some(deleted) = known.get(name) {
                // A forget whose catalog change was lost: finish it.
                if tombstone && !deleted {
                    query("UPDATE vault_snapshots SET deleted_ms = $2 WHERE vault = $1 AND id = $3")
                        .bind(now)
                        .bind(name.as_str())
                        .execute(self.db())
                        .await?;
                }
                continue;
            }
            let Some((id, manifest, manifest_bytes, refs)) = self.read_snapshot(name).await? else {
                report.snapshots_unreadable.push(name.clone());
                continue;
            };
            let deleted = tombstone.then_some(now);
            insert_snapshot(
                self.db(),
                &id,
                &manifest,
                &manifest_bytes,
                refs.ids().len(),
                deleted,
            )
            .await?;
            report.snapshots_restored += 1;
            report.snapshots_restored_forgotten += u64::from(tombstone);
        }
        for name in known.keys() {
            let Ok(id) = SnapshotId::from_str(name) else {
                continue;
            };
            if manifests.contains(name) || exists(o, &o.manifest(&id)).await? {
                continue;
            }
            report.snapshots_dropped += query("DELETE FROM vault_snapshots WHERE vault = $1 AND id = $2")
                .bind(name.as_str())
                .execute(self.db())
                .await?;
        }
        Ok(())
    }

    /// A snapshot's manifest and reference list from storage, if both are whole and agree.
    async fn read_snapshot(
        &self,
        name: &str,
    ) -> Result<Option<(SnapshotId, Manifest, Vec<u8>, ReferenceList)>> {
        let o = self.objects();
        let Ok(id) = SnapshotId::from_str(name) else {
            return Ok(None);
        };
        let (Some(manifest_bytes), Some(refs)) = (
            o.get_if_present(&o.manifest(&id)).await?,
            o.get_if_present(&o.references(&id)).await?,
        ) else {
            return Ok(None);
        };
        let manifest_bytes = manifest_bytes.to_vec();
        if Manifest::id_of(&manifest_bytes) != id {
            return Ok(None);
        }
        let (Ok(manifest), Ok(refs)) = (Manifest::decode(&manifest_bytes), ReferenceList::decode(&refs))
        else {
            return Ok(None);
        };
        if !manifest.matches_references(&refs) {
            return Ok(None);
        }
        Ok(Some((id, manifest, manifest_bytes, refs)))
    }
}

/// The names (last path part) of the objects under `folder`.
async fn list_names(o: &ObjectLayout, folder: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut list = o.store.list(Some(folder));
    while let Some(meta) = list.try_next().await? {
        if let Some(name) = meta.location.filename() {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

/// Whether an object exists: asked by name, so an object written after a listing began
/// (a backup running beside the rebuild) is not taken for lost.
async fn exists(o: &ObjectLayout, path: &Path) -> Result<bool> {
    match o.store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
