//! Garbage collection and repacking (the algorithm is described in the crate docs).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use bytes::Bytes;
use futures::TryStreamExt;
use kura_format::pack::{ENTRY_LEN, FOOTER_LEN};
use kura_format::{BlobKind, ChunkId, PackId, PackWriter, ReferenceList, SnapshotId};
use object_store::{ObjectStoreExt, PutPayload};

use crate::catalog::query;
use crate::vault::{BATCH, insert_pack, pack_bytes, raw_ids};
use crate::{Result, Vault, now_ms};

/// Chunk index rows read per page while sweeping (bounds the memory of a large vault).
const SWEEP_PAGE: i64 = 10_000;

/// Ids read at a time from each live snapshot's reference list while sweeping: 64 KiB,
/// less when there are many live snapshots, so that all windows together stay within
/// [`REFS_BUDGET`] bytes (a tenant with 20,000 snapshots would otherwise hold 1.3 GB).
const REFS_WINDOW: u64 = 2048;
const REFS_WINDOW_MIN: u64 = 64;
const REFS_BUDGET: u64 = 32 << 20;

/// A live snapshot's reference list, read a window at a time in id order as the sweep
/// walks the index in id order. GC held every live id in one set before (~120 bytes per
/// live chunk: 1 GB of memory per ~8 M chunks, i.e. per stored TB); now it holds a window
/// per live snapshot and the marks of one sweep page.
struct RefCursor {
    path: object_store::path::Path,
    count: u64,
    /// Index of the first id not read yet.
    read: u64,
    /// Ids read at a time.
    window_ids: u64,
    window: std::collections::VecDeque<ChunkId>,
    last: Option<ChunkId>,
}

impl RefCursor {
    async fn open(vault: &Vault, id: &SnapshotId) -> Result<RefCursor> {
        let o = vault.objects();
        let path = o.references(id);
        let size = o.store.head(&path).await?.size;
        let head = read_range(vault, &path, 0..ReferenceList::HEADER_LEN as u64).await?;
        let count = ReferenceList::decode_header(&head)?;
        if count
            .checked_mul(32)
            .map(|n| n + ReferenceList::HEADER_LEN as u64)
            != Some(size)
        {
            return Err(kura_format::FormatError::Malformed {
                what: "reference list",
                reason: format!("{count} ids do not fill {size} bytes"),
            }
            .into());
        }
        Ok(RefCursor {
            path,
            count,
            read: 0,
            window_ids: REFS_WINDOW,
            window: Default::default(),
            last: None,
        })
    }

    /// Moves every id up to and including `through` into `marks`.
    async fn mark_through(
        &mut self,
        vault: &Vault,
        through: &ChunkId,
        marks: &mut HashSet<ChunkId>,
    ) -> Result<()> {
        loop {
            while let Some(id) = self.window.front().filter(|id| *id <= through) {
                marks.insert(*id);
                self.window.pop_front();
            }
            if !self.window.is_empty() || self.read == self.count {
                return Ok(());
            }
            let end = (self.read + self.window_ids).min(self.count);
            let at = |i: u64| ReferenceList::HEADER_LEN as u64 + 32 * i;
            let bytes = read_range(vault, &self.path, at(self.read)..at(end)).await?;
            let ids = ReferenceList::decode_ids(&bytes, self.last.as_ref())?;
            self.last = ids.last().copied();
            self.window.extend(ids);
            self.read = end;
        }
    }
}

/// A pack and the figures of the index rows that point into it.
#[derive(sqlx::FromRow)]
struct PackFigures {
    id: Vec<u8>,
    size: i64,
    blob_count: i64,
    created_ms: i64,
    damaged: bool,
    /// Bytes of its sound blobs.
    live: i64,
    /// Index rows, sound or not.
    indexed: i64,
    /// Sound index rows.
    good: i64,
}

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

/// One range of an object (through the layout's local fast path where there is one).
async fn read_range(
    vault: &Vault,
    path: &object_store::path::Path,
    range: std::ops::Range<u64>,
) -> Result<Bytes> {
    let mut read = vault
        .objects()
        .read_ranges(path, std::slice::from_ref(&range))
        .await?;
    Ok(read.remove(0))
}

impl Vault {
    /// Deletes unreferenced chunks, dead packs and forgotten snapshots; repacks packs
    /// above the dead-space threshold. Safe while backups run.
    pub async fn gc(&self, options: GcOptions) -> Result<GcReport> {
        self.expire_sessions().await?;
        self.adopt_pending_packs().await?;
        let now = now_ms();
        let (oldest,): (Option<i64>,) = query("SELECT min(started_ms) FROM vault_sessions WHERE vault = $1")
            .fetch_one(self.db())
            .await?;
        let t_keep = oldest.map_or(now, |o| o.min(now));
        let mut report = GcReport::default();

        // Mark: live snapshots, and parents of open sessions even if forgotten.
        let rows: Vec<(String, bool, bool)> = query(
            "SELECT id, deleted_ms IS NOT NULL,
                    id IN (SELECT parent FROM vault_sessions WHERE vault = $1 AND parent IS NOT NULL)
             FROM vault_snapshots WHERE vault = $1",
        )
        .fetch_all(self.db())
        .await?;
        let mut live = Vec::new();
        let mut purge = Vec::new();
        for (id, deleted, parent_of_session) in rows {
            let id = SnapshotId::from_str(&id)?;
            if deleted && !parent_of_session {
                purge.push(id);
                continue;
            }
            live.push(RefCursor::open(self, &id).await?);
        }
        let window_ids = (REFS_BUDGET / 32 / (live.len() as u64).max(1)).clamp(REFS_WINDOW_MIN, REFS_WINDOW);
        for cursor in &mut live {
            cursor.window_ids = window_ids;
        }

        // Sweep the index in id order, merging the live snapshots' sorted reference lists
        // alongside it: a page's chunks are checked against the marks up to its last id.
        let mut dead: Vec<ChunkId> = Vec::new();
        let mut after: Vec<u8> = Vec::new();
        loop {
            let page: Vec<(Vec<u8>, i64)> = query(
                "SELECT id, seen_ms FROM vault_chunks WHERE vault = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(after.as_slice())
            .bind(SWEEP_PAGE)
            .fetch_all(self.db())
            .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            let last = ChunkId::from_slice(last)?;
            let mut marked = HashSet::new();
            for refs in &mut live {
                refs.mark_through(self, &last, &mut marked).await?;
            }
            for (id, seen) in &page {
                let id = ChunkId::from_slice(id)?;
                if *seen < t_keep && !marked.contains(&id) {
                    dead.push(id);
                }
            }
            after = last.as_bytes().to_vec();
        }
        report.chunks_deleted = dead.len() as u64;
        report.snapshots_purged = purge.len() as u64;
        if options.dry_run {
            return Ok(report);
        }
        for batch in dead.chunks(BATCH) {
            query("DELETE FROM vault_chunks WHERE vault = $1 AND seen_ms < $2 AND id IN ({ids})")
                .bind(t_keep)
                .bind_ids(raw_ids(batch))
                .execute(self.db())
                .await?;
        }
        let o = self.objects();
        for id in &purge {
            query("DELETE FROM vault_snapshots WHERE vault = $1 AND id = $2")
                .bind(id.to_hex())
                .execute(self.db())
                .await?;
            delete_if_present(o, &o.references(id)).await?;
            delete_if_present(o, &o.manifest(id)).await?;
            delete_if_present(o, &o.tombstone(id)).await?;
        }

        // Packs: delete the dead; repack the mostly dead and the damaged (their good
        // blobs move out, so the damaged object can go). The index rows are summed per
        // pack in one pass, then joined: joined row by row, SQLite read every chunk row of
        // the vault once per pack, so GC time grew with the square of the vault (14 s for
        // 1 M chunks in 60 packs, where 100 k took 0.8 s).
        let packs: Vec<PackFigures> = query(
            "SELECT p.id, p.size, p.blob_count, p.created_ms, p.damaged,
                    coalesce(c.live, 0) AS live, coalesce(c.indexed, 0) AS indexed,
                    coalesce(c.good, 0) AS good
             FROM vault_packs p LEFT JOIN (
               SELECT pack,
                      CAST(sum(CASE WHEN NOT bad THEN length ELSE 0 END) AS BIGINT) AS live,
                      count(*) AS indexed,
                      CAST(sum(CASE WHEN NOT bad THEN 1 ELSE 0 END) AS BIGINT) AS good
               FROM vault_chunks WHERE vault = $1 GROUP BY pack
             ) c ON c.pack = p.id
             WHERE p.vault = $1",
        )
        .fetch_all(self.db())
        .await?;
        let mut to_repack = Vec::new();
        for pack in packs {
            let PackFigures {
                id,
                size,
                blob_count,
                created_ms,
                damaged,
                live,
                indexed,
                good,
            } = pack;
            let dead = dead_bytes(size, blob_count, live);
            let id = PackId(pack_bytes(&id)?);
            if indexed == 0 && created_ms < t_keep {
                query("DELETE FROM vault_packs WHERE vault = $1 AND id = $2")
                    .bind(id.0.as_slice())
                    .execute(self.db())
                    .await?;
                delete_if_present(o, &o.pack(&id)).await?;
                report.packs_deleted += 1;
                report.bytes_freed += size as u64;
            } else if good > 0
                && created_ms < t_keep
                && (damaged || (dead > 0 && dead as f64 > options.max_unused * size as f64))
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
        report.orphans_deleted =
            self.delete_orphans(t_keep).await? + self.objects().delete_stale_staging(t_keep).await?;
        Ok(report)
    }

    /// Copies the sound blobs of `packs` into new packs, moves the index, deletes the old
    /// packs no index row points at any more. Blobs are found where the index says, not
    /// through the trailer, so a pack with a damaged trailer is rewritten too.
    pub(crate) async fn repack(&self, packs: &[(PackId, u64)]) -> Result<u64> {
        let o = self.objects();
        let mut writer = PackWriter::new();
        let mut moved: HashSet<ChunkId> = HashSet::new();
        let mut old_size = 0u64;
        let mut new_size = 0u64;
        for (pack, size) in packs {
            // Damaged blobs stay where they are: copying them would spread the damage.
            let live: Vec<(Vec<u8>, i64, i64, i64, i64)> = query(
                "SELECT id, kind, pack_offset, length, raw_length FROM vault_chunks
                 WHERE vault = $1 AND pack = $2 AND NOT bad ORDER BY pack_offset",
            )
            .bind(pack.0.as_slice())
            .fetch_all(self.db())
            .await?;
            let bytes = match o.store.get(&o.pack(pack)).await {
                Ok(r) => r.bytes().await?,
                // A lost pack has nothing to copy; verify has reported it.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for (id, kind, offset, length, raw_length) in live {
                let id = ChunkId::from_slice(&id)?;
                let Some(blob) = bytes.get(offset as usize..(offset + length) as usize) else {
                    continue;
                };
                if moved.insert(id) {
                    writer.add(id, BlobKind::from_u8(kind as u8)?, blob, raw_length as u32);
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
            let (left,): (i64,) = query("SELECT count(*) FROM vault_chunks WHERE vault = $1 AND pack = $2")
                .bind(pack.0.as_slice())
                .fetch_one(self.db())
                .await?;
            if left == 0 {
                query("DELETE FROM vault_packs WHERE vault = $1 AND id = $2")
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
        insert_pack(&mut tx, &id, size, entries.len()).await?;
        for e in &entries {
            query(
                "UPDATE vault_chunks SET pack = $2, pack_offset = $3, length = $4
                 WHERE vault = $1 AND id = $5 AND NOT bad",
            )
            .bind(id.0.as_slice())
            .bind(e.offset as i64)
            .bind(e.length as i64)
            .bind(e.id.as_bytes().as_slice())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(size)
    }

    async fn delete_orphans(&self, t_keep: i64) -> Result<u64> {
        let o = self.objects();
        // A pack still being stored is no orphan, whatever the store's clock says of it.
        let known_packs: Vec<(Vec<u8>,)> = query(
            "SELECT id FROM vault_packs WHERE vault = $1 UNION SELECT id FROM vault_pending_packs WHERE vault = $1",
        )
        .fetch_all(self.db())
        .await?;
        let known_packs: HashSet<Vec<u8>> = known_packs.into_iter().map(|r| r.0).collect();
        let known_snaps: Vec<(String,)> = query("SELECT id FROM vault_snapshots WHERE vault = $1")
            .fetch_all(self.db())
            .await?;
        let known_snaps: HashSet<String> = known_snaps.into_iter().map(|r| r.0).collect();
        let mut deleted = 0;
        let mut candidates: HashMap<object_store::path::Path, bool> = HashMap::new();
        for folder in [o.packs(), o.manifests(), o.reference_lists(), o.tombstones()] {
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

/// Bytes of a pack's blob area that no sound index row uses. The trailer and footer are
/// not dead: every pack has them, and counting them made `--max-unused 0` rewrite packs
/// that lost nothing.
fn dead_bytes(size: i64, blob_count: i64, live: i64) -> i64 {
    let blob_area = size - FOOTER_LEN as i64 - blob_count * ENTRY_LEN as i64;
    (blob_area - live).max(0)
}

async fn delete_if_present(o: &crate::ObjectLayout, path: &object_store::path::Path) -> Result<()> {
    match o.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
