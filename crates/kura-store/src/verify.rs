//! Verification: structure always; with `read_data`, every pack read back and every blob
//! checked. Damage marks chunks bad and names the snapshots it hurts.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::TryStreamExt;
use kura_format::pack::parse_pack;
use kura_format::{BlobCodec, ChunkId, PackId};
use object_store::ObjectStoreExt;

use crate::catalog::query;
use crate::vault::{BATCH, pack_bytes, raw_ids};
use crate::{Result, Vault};

/// How deep a verification goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyScope {
    /// Read every pack and check every blob.
    pub read_data: bool,
}

/// What a verification found.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub snapshots_checked: u64,
    pub packs_checked: u64,
    pub blobs_checked: u64,
    pub bytes_read: u64,
    /// Structural problems, one sentence each.
    pub problems: Vec<String>,
    /// Findings that lose no data (a clean vault may have them), one sentence each.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Chunks whose stored bytes are damaged or gone (hex ids).
    pub damaged_chunks: Vec<String>,
    /// Packs that are damaged or missing (hex ids).
    pub damaged_packs: Vec<String>,
    /// Snapshots that reference a damaged or missing chunk (hex ids).
    pub damaged_snapshots: Vec<String>,
    /// Packs whose bytes changed outside every indexed blob (dead space, or the trailer):
    /// no data is lost, and [`Vault::repair`] rewrites them (hex ids).
    #[serde(default)]
    pub repairable_packs: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.damaged_chunks.is_empty() && self.damaged_snapshots.is_empty()
    }
}

/// One index row of a pack: where a chunk's blob is, and whether it is marked bad.
pub(crate) struct IndexedBlob {
    pub(crate) id: ChunkId,
    pub(crate) offset: usize,
    pub(crate) length: usize,
    pub(crate) bad: bool,
}

impl IndexedBlob {
    /// Whether the blob is whole in `pack`, found where the index says rather than through
    /// the trailer (a damaged trailer must not condemn the blobs it lists; restores read
    /// by the index too). With a codec the blob is opened and its id recomputed; without
    /// one (the service, encrypted vault) only an unchanged pack vouches for it.
    pub(crate) fn is_sound(&self, pack: &[u8], codec: Option<&BlobCodec>, intact: bool) -> bool {
        let Some(blob) = pack.get(self.offset..self.offset + self.length) else {
            return false;
        };
        match codec {
            Some(c) => c.open_rehashed(&self.id, blob).is_ok(),
            None => intact,
        }
    }
}

impl Vault {
    /// Verifies the vault. With a codec (the key holder's side) every blob is opened —
    /// decrypted, decompressed and re-hashed; without one, packs are checked against
    /// their content hash and plain blobs re-hashed.
    pub async fn verify(&self, scope: VerifyScope, opener: Option<&BlobCodec>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let o = self.objects();

        // Packs in the catalog against the objects in storage.
        let mut stored: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut list = o.store.list(Some(&o.packs()));
        while let Some(meta) = list.try_next().await? {
            if let Some(Ok(id)) = meta.location.filename().map(hex::decode) {
                stored.insert(id, meta.size);
            }
        }
        let packs: Vec<(Vec<u8>, i64)> =
            query("SELECT id, size FROM vault_packs WHERE vault = $1 ORDER BY id")
                .fetch_all(self.db())
                .await?;
        let packs: Vec<(PackId, u64)> = packs
            .into_iter()
            .map(|(id, size)| Ok((PackId(pack_bytes(&id)?), size as u64)))
            .collect::<Result<_>>()?;
        let mut bad_packs: BTreeSet<PackId> = BTreeSet::new();
        for (id, size) in &packs {
            match stored.get(id.0.as_slice()) {
                None => {
                    report.problems.push(format!("pack {id} is missing from storage"));
                    bad_packs.insert(*id);
                }
                Some(s) if s != size => {
                    report
                        .problems
                        .push(format!("pack {id} has {s} bytes, the catalog says {size}"));
                    bad_packs.insert(*id);
                }
                Some(_) => {}
            }
        }
        let (dangling,): (i64,) = query(
            "SELECT count(*) FROM vault_chunks
             WHERE vault = $1 AND pack NOT IN (SELECT id FROM vault_packs WHERE vault = $1)",
        )
        .fetch_one(self.db())
        .await?;
        if dangling > 0 {
            report.problems.push(format!(
                "{dangling} index entries point at packs the catalog does not know"
            ));
        }

        // Every pack's bytes and blobs.
        let mut bad_chunks: HashSet<ChunkId> = HashSet::new();
        let mut changed_packs: Vec<PackId> = Vec::new();
        if scope.read_data {
            let plain = (!self.config().encrypted).then(|| BlobCodec::plain(self.config().compression_level));
            let codec = opener.or(plain.as_ref());
            for (id, _) in &packs {
                if bad_packs.contains(id) {
                    continue;
                }
                report.packs_checked += 1;
                let (damaged, intact) = self.verify_pack(id, codec, &mut report).await?;
                if !intact {
                    changed_packs.push(*id);
                }
                if !damaged.is_empty() {
                    bad_packs.insert(*id);
                    bad_chunks.extend(damaged);
                } else if !intact {
                    report.repairable_packs.push(id.to_hex());
                }
            }
        }
        // Chunks of missing packs are gone.
        for id in &bad_packs {
            if !stored.contains_key(id.0.as_slice()) || !scope.read_data {
                let rows: Vec<(Vec<u8>,)> =
                    query("SELECT id FROM vault_chunks WHERE vault = $1 AND pack = $2")
                        .bind(id.0.as_slice())
                        .fetch_all(self.db())
                        .await?;
                for (c,) in rows {
                    bad_chunks.insert(ChunkId::from_slice(&c)?);
                }
            }
        }
        self.mark_bad(&bad_chunks).await?;
        changed_packs.extend(bad_packs.iter().copied());
        self.mark_damaged_packs(&changed_packs).await?;

        // Snapshots: manifest, reference list, every reference present and sound.
        for snap in self.snapshots().await? {
            report.snapshots_checked += 1;
            let refs = match self.references(&snap.id).await {
                Ok(r) => r,
                Err(e) => {
                    report.problems.push(format!(
                        "snapshot {}: reference list unreadable: {e}",
                        snap.id.short()
                    ));
                    report.damaged_snapshots.push(snap.id.to_hex());
                    continue;
                }
            };
            if !snap.manifest.matches_references(&refs) {
                report.problems.push(format!(
                    "snapshot {}: reference list does not match its manifest",
                    snap.id.short()
                ));
                report.damaged_snapshots.push(snap.id.to_hex());
                continue;
            }
            let absent = self.absent_chunks(refs.ids()).await?;
            if !absent.is_empty() {
                let newly: Vec<_> = absent.iter().filter(|c| !bad_chunks.contains(c)).collect();
                if !newly.is_empty() {
                    report.problems.push(format!(
                        "snapshot {}: {} referenced chunks are missing or damaged",
                        snap.id.short(),
                        absent.len()
                    ));
                }
                bad_chunks.extend(absent);
                report.damaged_snapshots.push(snap.id.to_hex());
            }
        }
        let mut chunks: Vec<String> = bad_chunks.iter().map(|c| c.to_hex()).collect();
        chunks.sort();
        report.damaged_chunks = chunks;
        report.damaged_packs = bad_packs.iter().map(|p| p.to_hex()).collect();
        Ok(report)
    }

    /// Reads one pack; returns the ids of damaged blobs in it, and whether the pack's
    /// bytes are still the ones stored.
    async fn verify_pack(
        &self,
        id: &PackId,
        codec: Option<&BlobCodec>,
        report: &mut VerifyReport,
    ) -> Result<(Vec<ChunkId>, bool)> {
        let indexed = self.indexed_in(id).await?;
        let bytes = match self.objects().store.get(&self.objects().pack(id)).await {
            Ok(r) => r.bytes().await?,
            Err(e) => {
                report.problems.push(format!("pack {id} cannot be read: {e}"));
                return Ok((indexed.iter().map(|b| b.id).collect(), false));
            }
        };
        report.bytes_read += bytes.len() as u64;
        let intact = PackId::of(&bytes) == *id;
        let mut damaged = Vec::new();
        for blob in &indexed {
            report.blobs_checked += 1;
            if !blob.is_sound(&bytes, codec, intact) {
                damaged.push(blob.id);
            }
        }
        if !intact && damaged.is_empty() {
            let part = if parse_pack(&bytes).is_err() {
                "its trailer"
            } else {
                "dead space"
            };
            report.warnings.push(format!(
                "pack {id}: bytes changed outside every indexed blob ({part}); no data is lost — `kura repair` rewrites the pack"
            ));
        }
        Ok((damaged, intact))
    }

    /// The index rows that point into `pack`.
    pub(crate) async fn indexed_in(&self, pack: &PackId) -> Result<Vec<IndexedBlob>> {
        let rows: Vec<(Vec<u8>, i64, i64, bool)> =
            query("SELECT id, pack_offset, length, bad FROM vault_chunks WHERE vault = $1 AND pack = $2")
                .bind(pack.0.as_slice())
                .fetch_all(self.db())
                .await?;
        rows.into_iter()
            .map(|(id, offset, length, bad)| {
                Ok(IndexedBlob {
                    id: ChunkId::from_slice(&id)?,
                    offset: offset as usize,
                    length: length as usize,
                    bad,
                })
            })
            .collect()
    }

    /// Notes packs whose stored bytes are missing or changed, so GC replaces them.
    pub(crate) async fn mark_damaged_packs(&self, packs: &[PackId]) -> Result<()> {
        for pack in packs {
            query("UPDATE vault_packs SET damaged = TRUE WHERE vault = $1 AND id = $2")
                .bind(pack.0.as_slice())
                .execute(self.db())
                .await?;
        }
        Ok(())
    }

    /// Marks chunks as damaged: backups treat them as missing and upload them again.
    pub async fn mark_bad(&self, ids: &HashSet<ChunkId>) -> Result<()> {
        let ids: Vec<ChunkId> = ids.iter().copied().collect();
        for batch in ids.chunks(BATCH) {
            query("UPDATE vault_chunks SET bad = TRUE WHERE vault = $1 AND id IN ({ids})")
                .bind_ids(raw_ids(batch))
                .execute(self.db())
                .await?;
        }
        Ok(())
    }
}
