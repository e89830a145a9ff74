//! Garbage collection and repacking (the algorithm is described in the crate docs).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use bytes::Bytes;
use futures::TryStreamExt;
use kura_format::pack::parse_pack;
use kura_format::{ChunkId, PackId, PackWriter, SnapshotId};
use object_store::{ObjectStoreExt, PutPayload};
use sqlx::Row;

use crate::vault::{BATCH, pack_bytes, placeholders};
use crate::{Result, Vault, now_ms};

/// How GC treats partly dead packs.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// Repack a pack when more than this share of its bytes is dead (0.0–1.0).
    pub max_unused: f64,
    /// Only report what would be done.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            max_unused: 0.1,
            dry_run: false,
        }
    }
}

/// What one GC run did (or would do, in a dry run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub chunks_deleted: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub bytes_freed: u64,
    pub orphans_deleted: u64,
    pub snapshots_purged: u64,
}

impl Vault {
    /// Deletes unreferenced chunks, dead packs and forgotten snapshots; repacks packs
    /// above the dead-space threshold. Safe while backups run.
    pub async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        self.expire_sessions().await?;
        self.adopt_pending_packs().await?;
        let now = now_ms();
        let (oldest,): (Option<i64>,) = sqlx::query_as("SELECT min(started_ms) FROM sessions")
            .fetch_one(self.db())
            .await?;
        let t_keep = oldest.map_or(now, |o| o.min(now));
        let mut report = GcReport::default();

        // Mark: live snapshots, and parents of open sessions even if forgotten.
        let rows = sqlx::query(
            "SELECT id, deleted_ms IS NOT NULL, id IN (SELECT parent FROM sessions WHERE parent IS NOT NULL) FROM snapshots",
        )
        .fetch_all(self.db())
        .await?;
        let mut marked: HashSet<ChunkId> = HashSet::new();
        let mut purge = Vec::new();
        for row in rows {
            let id = SnapshotId::from_str(&row.get::<String, _>(0))?;
            let deleted: bool = row.get(1);
            let parent_of_session: bool = row.get(2);
            if deleted && !parent_of_session {
                purge.push(id);
                continue;
            }
            marked.extend(self.references(&id).await?.ids().iter().copied());
        }

        // Sweep the index.
        let mut dead: Vec<ChunkId> = Vec::new();
        let mut rows = sqlx::query("SELECT id, seen_ms FROM chunks").fetch(self.db());
        while let Some(row) = rows.try_next().await? {
            let id = ChunkId::from_slice(&row.get::<Vec<u8>, _>(0))?;
            let seen: i64 = row.get(1);
            if seen < t_keep && !marked.contains(&id) {
                dead.push(id);
            }
        }
        drop(rows);
        report.chunks_deleted = dead.len() as u64;
        report.snapshots_purged = purge.len() as u64;
        if options.dry_run {
            return Ok(report);
        }
        for batch in dead.chunks(BATCH) {
            let sql = format!(
                "DELETE FROM chunks WHERE seen_ms < $1 AND id IN ({})",
                placeholders(batch.len(), 2)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(t_keep);
            for id in batch {
                q = q.bind(id.as_bytes().as_slice());
            }
            q.execute(self.db()).await?;
        }
        let o = self.objects();
        for id in &purge {
            sqlx::query("DELETE FROM snapshots WHERE id = $1")
                .bind(id.to_hex())
                .execute(self.db())
                .await?;
            delete_if_present(o, &o.references(id)).await?;
            delete_if_present(o, &o.manifest(id)).await?;
        }

        // Packs: delete the dead; repack the mostly dead and the damaged (their good
        // blobs move out, so the damaged object can go).
        let packs = sqlx::query(
            "SELECT p.id, p.size, p.created_ms, p.damaged,
                    coalesce(sum(CASE WHEN c.bad = 0 THEN c.length ELSE 0 END), 0),
                    count(c.id), coalesce(sum(CASE WHEN c.bad = 0 THEN 1 ELSE 0 END), 0)
             FROM packs p LEFT JOIN chunks c ON c.pack = p.id GROUP BY p.id",
        )
        .fetch_all(self.db())
        .await?;
        let mut to_repack = Vec::new();
        for row in packs {
            let id = PackId(pack_bytes(&row.get::<Vec<u8>, _>(0))?);
            let size: i64 = row.get(1);
            let created: i64 = row.get(2);
            let damaged: bool = row.get::<i64, _>(3) != 0;
            let live: i64 = row.get(4);
            let indexed: i64 = row.get(5);
            let good: i64 = row.get(6);
            if indexed == 0 && created < t_keep {
                sqlx::query("DELETE FROM packs WHERE id = $1")
                    .bind(id.0.as_slice())
                    .execute(self.db())
                    .await?;
                delete_if_present(o, &o.pack(&id)).await?;
                report.packs_deleted += 1;
                report.bytes_freed += size as u64;
            } else if good > 0
                && created < t_keep
                && (damaged || (size - live) as f64 > options.max_unused * size as f64)
            {
                to_repack.push((id, size as u64));
            }
        }
        if !to_repack.is_empty() {
            let freed = self.repack(&to_repack).await?;
            report.packs_repacked = to_repack.len() as u64;
            report.bytes_freed += freed;
        }

        // Objects no catalog row knows, left by killed runs before t_keep.
        report.orphans_deleted = self.delete_orphans(t_keep).await?;
        Ok(report)
    }

    /// Copies the live blobs of `packs` into new packs, moves the index, deletes the old.
    async fn repack(&self, packs: &[(PackId, u64)]) -> Result<u64> {
        let o = self.objects();
        let mut writer = PackWriter::new();
        let mut moved: HashSet<ChunkId> = HashSet::new();
        let mut old_size = 0u64;
        let mut new_size = 0u64;
        for (pack, size) in packs {
            // Damaged blobs stay where they are: copying them would spread the damage.
            let live: HashSet<Vec<u8>> =
                sqlx::query_as::<_, (Vec<u8>,)>("SELECT id FROM chunks WHERE pack = $1 AND bad = 0")
                    .bind(pack.0.as_slice())
                    .fetch_all(self.db())
                    .await?
                    .into_iter()
                    .map(|r| r.0)
                    .collect();
            let bytes = match o.store.get(&o.pack(pack)).await {
                Ok(r) => r.bytes().await?,
                // A lost pack has nothing to copy; verify has reported it.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(entries) = parse_pack(&bytes) else {
                continue;
            };
            for e in entries {
                if live.contains(e.id.as_bytes().as_slice()) && !moved.contains(&e.id) {
                    writer.add(
                        e.id,
                        e.kind,
                        &bytes[e.offset as usize..(e.offset + e.length) as usize],
                        e.raw_length,
                    );
                    moved.insert(e.id);
                }
            }
            old_size += size;
            if writer.is_full() {
                new_size += self.store_repacked(std::mem::take(&mut writer)).await?;
            }
        }
        if !writer.is_empty() {
            new_size += self.store_repacked(writer).await?;
        }
        for (pack, _) in packs {
            // Only drop the old pack once no index row points at it any more.
            let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM chunks WHERE pack = $1")
                .bind(pack.0.as_slice())
                .fetch_one(self.db())
                .await?;
            if left == 0 {
                sqlx::query("DELETE FROM packs WHERE id = $1")
                    .bind(pack.0.as_slice())
                    .execute(self.db())
                    .await?;
                delete_if_present(o, &o.pack(pack)).await?;
            }
        }
        Ok(old_size.saturating_sub(new_size))
    }

    async fn store_repacked(&self, writer: PackWriter) -> Result<u64> {
        let (id, bytes, entries) = writer.finish();
        let size = bytes.len() as u64;
        let o = self.objects();
        o.store
            .put(&o.pack(&id), PutPayload::from(Bytes::from(bytes)))
            .await?;
        let mut tx = self.db().begin().await?;
        sqlx::query("INSERT OR IGNORE INTO packs (id, size, blob_count, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(id.0.as_slice())
            .bind(size as i64)
            .bind(entries.len() as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for e in &entries {
            sqlx::query("UPDATE chunks SET pack = $1, offset = $2, length = $3 WHERE id = $4 AND bad = 0")
                .bind(id.0.as_slice())
                .bind(e.offset as i64)
                .bind(e.length as i64)
                .bind(e.id.as_bytes().as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(size)
    }

    async fn delete_orphans(&self, t_keep: i64) -> Result<u64> {
        let o = self.objects();
        let known_packs: HashSet<Vec<u8>> = sqlx::query_as::<_, (Vec<u8>,)>("SELECT id FROM packs")
            .fetch_all(self.db())
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect();
        let known_snaps: HashSet<String> = sqlx::query_as::<_, (String,)>("SELECT id FROM snapshots")
            .fetch_all(self.db())
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect();
        let mut deleted = 0;
        let mut candidates: HashMap<object_store::path::Path, bool> = HashMap::new();
        for folder in [o.packs(), o.manifests(), o.reference_lists()] {
            let mut list = o.store.list(Some(&folder));
            while let Some(meta) = list.try_next().await? {
                if meta.last_modified.timestamp_millis() >= t_keep {
                    continue;
                }
                let name = meta.location.filename().unwrap_or_default().to_string();
                let known = if folder == o.packs() {
                    hex::decode(&name)
                        .map(|b| known_packs.contains(&b))
                        .unwrap_or(false)
                } else {
                    known_snaps.contains(&name)
                };
                candidates.insert(meta.location.clone(), known);
            }
        }
        for (path, known) in candidates {
            if !known {
                delete_if_present(o, &path).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

async fn delete_if_present(o: &crate::ObjectLayout, path: &object_store::path::Path) -> Result<()> {
    match o.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
