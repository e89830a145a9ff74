//! Repair: heals what the vault can heal from its own bytes, and names what it cannot.
//!
//! Every pack is read back. A blob that is whole where the index points has its damage
//! mark cleared (a pack put back from a copy heals that way); one that is not is marked bad
//! (only that row: a copy uploaded meanwhile is left alone). A pack whose bytes changed —
//! in a blob, in dead space or in its trailer — has its sound blobs moved into new packs,
//! and goes once no index row points at it. A bad chunk with a whole copy in another pack
//! (two uploads raced, or a backup uploaded it again before a repack) is pointed at that
//! copy. What is still bad then exists nowhere else in the vault: a backup of the same data
//! uploads it again (bad chunks count as missing), or the snapshots that need it can be
//! forgotten.
//!
//! Repair is safe while backups run (they only add rows and packs; every update here is
//! guarded by the pack a row pointed at), but not while GC runs: both move blobs.

use std::collections::{HashMap, HashSet};

use kura_format::pack::parse_pack;
use kura_format::{BlobCodec, ChunkId, PackId};

use crate::catalog::query;
use crate::vault::pack_bytes;
use crate::{Result, Vault, VerifyReport, VerifyScope};

/// What a repair did, and what it could not heal.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RepairReport {
    pub packs_checked: u64,
    pub bytes_read: u64,
    /// Packs whose bytes had changed, rewritten without them and deleted (hex ids).
    pub packs_rewritten: Vec<String>,
    /// Packs whose bytes changed that stay, because they hold the only (damaged) copy of
    /// some chunk (hex ids).
    pub packs_kept: Vec<String>,
    /// Damage marks cleared: the chunk is whole where the index points, or now points at
    /// a whole copy.
    pub marks_cleared: u64,
    /// Chunks found damaged and marked, so backups upload them again.
    pub chunks_marked: u64,
    /// A structural check after the repair: its damaged chunks and snapshots are what
    /// cannot be healed from the vault alone.
    pub remaining: VerifyReport,
}

impl RepairReport {
    /// Whether the vault is whole after the repair.
    pub fn is_healed(&self) -> bool {
        self.remaining.is_clean()
    }
}

/// Where a blob lies.
type Location = (PackId, u32, u32);

impl Vault {
    /// Reads every pack and heals what can be healed (see the module docs). With a codec
    /// (the key holder's side) every blob is opened and its id recomputed; without one,
    /// only an unchanged pack vouches for its blobs, so in an encrypted vault a changed
    /// pack's chunks stay bad until a backup uploads them again.
    pub async fn repair(&self, opener: Option<&BlobCodec>) -> Result<RepairReport> {
        self.adopt_pending_packs().await?;
        let plain = (!self.config().encrypted).then(|| BlobCodec::plain(self.config().compression_level));
        let codec = opener.or(plain.as_ref());
        let packs: Vec<(Vec<u8>, i64)> =
            query("SELECT id, size FROM vault_packs WHERE vault = $1 ORDER BY id")
                .fetch_all(self.db())
                .await?;
        let mut report = RepairReport::default();
        let mut rewrite: Vec<(PackId, u64)> = Vec::new();
        let mut intact_packs: HashSet<PackId> = HashSet::new();
        // Blobs the trailers list where the index does not point: candidate copies.
        let mut spares: HashMap<ChunkId, Vec<Location>> = HashMap::new();
        let o = self.objects();
        for (raw, size) in packs {
            let pack = PackId(pack_bytes(&raw)?);
            let indexed = self.indexed_in(&pack).await?;
            let bytes = o.get_if_present(&o.pack(&pack)).await?;
            let intact = bytes.as_ref().is_some_and(|b| PackId::of(b) == pack);
            if let Some(bytes) = &bytes {
                report.packs_checked += 1;
                report.bytes_read += bytes.len() as u64;
                if let Ok(entries) = parse_pack(bytes) {
                    let here: HashSet<ChunkId> = indexed.iter().map(|b| b.id).collect();
                    for e in entries.into_iter().filter(|e| !here.contains(&e.id)) {
                        spares.entry(e.id).or_default().push((pack, e.offset, e.length));
                    }
                }
            }
            for blob in &indexed {
                let sound = bytes.as_ref().is_some_and(|b| blob.is_sound(b, codec, intact));
                // A sound blob marked bad, or a damaged one not marked. Without a codec an
                // unchanged pack vouches for its bytes, not for what its writer sealed: a
                // mark set by a check with the key stays.
                if sound == blob.bad && (codec.is_some() || !sound) {
                    let changed = self.set_bad(&blob.id, &pack, !sound).await?;
                    match sound {
                        true => report.marks_cleared += changed,
                        false => report.chunks_marked += changed,
                    }
                }
            }
            if intact {
                intact_packs.insert(pack);
                query("UPDATE vault_packs SET damaged = FALSE WHERE vault = $1 AND id = $2")
                    .bind(pack.0.as_slice())
                    .execute(self.db())
                    .await?;
            } else {
                rewrite.push((pack, size as u64));
            }
        }
        report.marks_cleared += self.adopt_spares(&spares, codec, &intact_packs).await?;
        if !rewrite.is_empty() {
            self.repack(&rewrite).await?;
        }
        for (pack, _) in &rewrite {
            // A pack whose blobs all moved is gone, or was written again under its own id
            // (its blobs in the same order make the same bytes): healed either way.
            let (bad,): (i64,) =
                query("SELECT count(*) FROM vault_chunks WHERE vault = $1 AND pack = $2 AND bad")
                    .bind(pack.0.as_slice())
                    .fetch_one(self.db())
                    .await?;
            if bad > 0 {
                report.packs_kept.push(pack.to_hex());
                continue;
            }
            query("UPDATE vault_packs SET damaged = FALSE WHERE vault = $1 AND id = $2")
                .bind(pack.0.as_slice())
                .execute(self.db())
                .await?;
            report.packs_rewritten.push(pack.to_hex());
        }
        report.remaining = self.verify(VerifyScope::default(), None).await?;
        Ok(report)
    }

    /// Points bad chunks at a whole copy another pack holds. Returns how many it healed.
    async fn adopt_spares(
        &self,
        spares: &HashMap<ChunkId, Vec<Location>>,
        codec: Option<&BlobCodec>,
        intact_packs: &HashSet<PackId>,
    ) -> Result<u64> {
        let bad: Vec<(Vec<u8>, Vec<u8>)> =
            query("SELECT id, pack FROM vault_chunks WHERE vault = $1 AND bad")
                .fetch_all(self.db())
                .await?;
        let o = self.objects();
        let mut healed = 0;
        for (id, old_pack) in bad {
            let id = ChunkId::from_slice(&id)?;
            for (pack, offset, length) in spares.get(&id).into_iter().flatten() {
                let range = u64::from(*offset)..u64::from(*offset) + u64::from(*length);
                let Ok(mut read) = o.read_ranges(&o.pack(pack), &[range]).await else {
                    continue;
                };
                let blob = read.remove(0);
                let whole = match codec {
                    Some(c) => c.open_rehashed(&id, &blob).is_ok(),
                    None => intact_packs.contains(pack),
                };
                if !whole {
                    continue;
                }
                healed += query(
                    "UPDATE vault_chunks SET pack = $2, pack_offset = $3, length = $4, bad = FALSE
                     WHERE vault = $1 AND id = $5 AND pack = $6 AND bad",
                )
                .bind(pack.0.as_slice())
                .bind(i64::from(*offset))
                .bind(i64::from(*length))
                .bind(id.as_bytes().as_slice())
                .bind(old_pack.as_slice())
                .execute(self.db())
                .await?;
                break;
            }
        }
        Ok(healed)
    }

    /// Marks or clears one chunk's damage, if its row still points at `pack`.
    async fn set_bad(&self, id: &ChunkId, pack: &PackId, bad: bool) -> Result<u64> {
        let sql = match bad {
            true => "UPDATE vault_chunks SET bad = TRUE WHERE vault = $1 AND id = $2 AND pack = $3",
            false => "UPDATE vault_chunks SET bad = FALSE WHERE vault = $1 AND id = $2 AND pack = $3",
        };
        query(sql)
            .bind(id.as_bytes().as_slice())
            .bind(pack.0.as_slice())
            .execute(self.db())
            .await
    }
}
