//! Snapshot manifests and reference lists.
//!
//! A manifest has a header the service can read (kind, times, host, source, tags, parent,
//! stats) and a sealed body only key holders can read (the backed-up paths and the root
//! tree). Next to it, a [`ReferenceList`] names every chunk the snapshot uses, so the
//! service can count usage, collect garbage and check references without any key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::take;
use crate::{BlobCodec, ChunkId, FormatError};

/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 1;
/// Current reference list format version.
pub const REFERENCE_LIST_VERSION: u8 = 1;
const REFS_MAGIC: &[u8; 4] = b"KREF";

/// The id of a snapshot: BLAKE3 of its encoded manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(pub [u8; 32]);

impl SnapshotId {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.short())
    }
}

impl FromStr for SnapshotId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SnapshotId(ChunkId::from_str(s)?.0))
    }
}

impl Serialize for SnapshotId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChunkId(self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SnapshotId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SnapshotId(ChunkId::deserialize(d)?.0))
    }
}

/// Whether a snapshot holds a file tree or a disk image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    Files,
    Image,
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotKind::Files => "files",
            SnapshotKind::Image => "image",
        })
    }
}

/// Figures of one backup run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    /// Logical bytes of the files in the snapshot.
    pub bytes: u64,
    /// Bytes read from disk (unchanged files are not read).
    pub bytes_read: u64,
    /// Stored bytes this run added to the vault.
    pub bytes_added: u64,
    pub chunks_added: u64,
    /// Files that could not be read and are missing from the snapshot.
    pub errors: u64,
}

/// The service-readable part of a snapshot plus its sealed body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub kind: SnapshotKind,
    /// Start and end of the run, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    pub end_time_ns: i64,
    pub host: String,
    /// Name of what was backed up (defaults to the host and paths).
    pub source: String,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub stats: SnapshotStats,
    /// Number of chunks in the reference list, and its BLAKE3.
    pub reference_count: u64,
    pub references_hash: ByteBuf,
    /// Id and blob of the sealed [`ManifestBody`].
    pub body_id: ChunkId,
    pub body: ByteBuf,
}

/// What only key holders can read: the paths and the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBody {
    pub paths: Vec<String>,
    /// Root tree (files) or image index (images).
    pub root: ChunkId,
}

impl ManifestBody {
    /// Seals the body into `(id, blob)` with the vault's codec.
    pub fn seal(&self, codec: &BlobCodec) -> crate::Result<(ChunkId, Vec<u8>)> {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes).expect("CBOR encoding into memory cannot fail");
        let id = codec.id(&bytes);
        Ok((id, codec.seal(&id, &bytes)?))
    }
}

impl Manifest {
    /// CBOR encoding; the snapshot id is the hash of exactly these bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// The id of a snapshot whose manifest encodes to `bytes`.
    pub fn id_of(bytes: &[u8]) -> SnapshotId {
        SnapshotId(*blake3::hash(bytes).as_bytes())
    }

    /// Decodes and checks the version.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let m: Manifest = ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("manifest", e))?;
        if m.version != MANIFEST_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "manifest",
                version: m.version,
                supported: MANIFEST_VERSION,
            });
        }
        if m.references_hash.len() != 32 {
            return Err(FormatError::malformed(
                "manifest",
                "reference hash is not 32 bytes",
            ));
        }
        Ok(m)
    }

    /// Opens the sealed body.
    pub fn open_body(&self, codec: &BlobCodec) -> crate::Result<ManifestBody> {
        let bytes = codec.open(&self.body_id, &self.body)?;
        ciborium::from_reader(bytes.as_slice()).map_err(|e| FormatError::cbor("manifest body", e))
    }

    /// Whether `refs` is the reference list this manifest was written with.
    pub fn matches_references(&self, refs: &ReferenceList) -> bool {
        refs.ids.len() as u64 == self.reference_count
            && refs.hash().as_slice() == self.references_hash.as_slice()
    }
}

/// Every chunk id a snapshot uses (file data, trees, image blocks), sorted and unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceList {
    ids: Vec<ChunkId>,
}

impl ReferenceList {
    /// From ids in any order, with duplicates.
    pub fn from_ids(mut ids: Vec<ChunkId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        ReferenceList { ids }
    }

    /// The ids, sorted.
    pub fn ids(&self) -> &[ChunkId] {
        &self.ids
    }

    /// Whether `id` is referenced.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.ids.binary_search(id).is_ok()
    }

    /// BLAKE3 of the encoding.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// `"KREF"`, version, three zero bytes, count (u64 LE), then the ids.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.ids.len() * 32);
        out.extend_from_slice(REFS_MAGIC);
        out.push(REFERENCE_LIST_VERSION);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    /// Bytes of an encoding's header, before the ids.
    pub const HEADER_LEN: usize = 16;

    /// Decodes and checks that ids are sorted and unique.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let mut input = bytes;
        let head = take(&mut input, Self::HEADER_LEN, "reference list header")?;
        let count = Self::decode_header(head)?;
        if count.checked_mul(32) != Some(input.len() as u64) {
            return Err(FormatError::malformed(
                "reference list",
                "count does not match length",
            ));
        }
        Ok(ReferenceList {
            ids: Self::decode_ids(input, None)?,
        })
    }

    /// The number of ids announced by a header ([`Self::HEADER_LEN`] bytes). With
    /// [`Self::decode_ids`], a list is read a stretch at a time (GC does, so that its memory
    /// does not grow with the vault).
    pub fn decode_header(head: &[u8]) -> crate::Result<u64> {
        if head.len() != Self::HEADER_LEN {
            return Err(FormatError::malformed(
                "reference list",
                "shorter than its header",
            ));
        }
        if &head[..4] != REFS_MAGIC {
            return Err(FormatError::BadMagic {
                what: "reference list",
            });
        }
        if head[4] != REFERENCE_LIST_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "reference list",
                version: head[4] as u32,
                supported: REFERENCE_LIST_VERSION as u32,
            });
        }
        if head[5..8] != [0, 0, 0] {
            return Err(FormatError::malformed(
                "reference list",
                "reserved bytes are not zero",
            ));
        }
        Ok(u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")))
    }

    /// A stretch of an encoding's ids, checked to be whole ids, sorted and unique, and
    /// above `after` (the last id of the stretch before it).
    pub fn decode_ids(bytes: &[u8], after: Option<&ChunkId>) -> crate::Result<Vec<ChunkId>> {
        if !bytes.len().is_multiple_of(32) {
            return Err(FormatError::malformed("reference list", "a partial id"));
        }
        let ids: Vec<ChunkId> = bytes
            .chunks_exact(32)
            .map(|c| ChunkId(c.try_into().expect("32 bytes")))
            .collect();
        let first_in_order = match (after, ids.first()) {
            (Some(after), Some(first)) => after < first,
            _ => true,
        };
        if !first_in_order || ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(FormatError::malformed(
                "reference list",
                "ids are not sorted and unique",
            ));
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;
    use proptest::prelude::*;

    fn manifest(codec: &BlobCodec, refs: &ReferenceList) -> Manifest {
        let body = ManifestBody {
            paths: vec!["/home/a".into()],
            root: ChunkId([9; 32]),
        };
        let (body_id, blob) = body.seal(codec).unwrap();
        Manifest {
            version: MANIFEST_VERSION,
            kind: SnapshotKind::Files,
            time_ns: 1_700_000_000_000_000_000,
            end_time_ns: 1_700_000_001_000_000_000,
            host: "web1".into(),
            source: "web1:/home".into(),
            tags: vec!["daily".into()],
            parent: None,
            stats: SnapshotStats::default(),
            reference_count: refs.ids().len() as u64,
            references_hash: ByteBuf::from(refs.hash().to_vec()),
            body_id,
            body: ByteBuf::from(blob),
        }
    }

    #[test]
    fn manifest_round_trip_plain_and_encrypted() {
        let refs = ReferenceList::from_ids(vec![ChunkId([3; 32]), ChunkId([1; 32]), ChunkId([3; 32])]);
        for codec in [
            BlobCodec::plain(3),
            BlobCodec::encrypted(&MasterKey::generate().unwrap(), 3),
        ] {
            let m = manifest(&codec, &refs);
            let bytes = m.encode();
            let d = Manifest::decode(&bytes).unwrap();
            assert_eq!(d, m);
            assert!(d.matches_references(&refs));
            assert_eq!(d.open_body(&codec).unwrap().root, ChunkId([9; 32]));
        }
    }

    #[test]
    fn body_needs_the_right_key() {
        let refs = ReferenceList::default();
        let a = BlobCodec::encrypted(&MasterKey::generate().unwrap(), 3);
        let b = BlobCodec::encrypted(&MasterKey::generate().unwrap(), 3);
        assert!(manifest(&a, &refs).open_body(&b).is_err());
    }

    #[test]
    fn stretches_out_of_order_or_partial_are_refused() {
        let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
        assert!(ReferenceList::decode_ids(a.as_bytes(), Some(&b)).is_err());
        assert!(ReferenceList::decode_ids(a.as_bytes(), Some(&a)).is_err());
        assert!(ReferenceList::decode_ids(&[0; 31], None).is_err());
        assert_eq!(
            ReferenceList::decode_ids(b.as_bytes(), Some(&a)).unwrap(),
            vec![b]
        );
        assert!(ReferenceList::decode_header(&[0; 15]).is_err());
    }

    proptest! {
        #[test]
        fn reference_list_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..50)) {
            let refs = ReferenceList::from_ids(ids.into_iter().map(ChunkId).collect());
            let decoded = ReferenceList::decode(&refs.encode()).unwrap();
            prop_assert_eq!(&decoded, &refs);
            for id in refs.ids() {
                prop_assert!(decoded.contains(id));
            }
        }

        #[test]
        fn reference_list_reads_in_stretches(
            ids in proptest::collection::vec(any::<[u8; 32]>(), 0..50),
            stretch in 1usize..8,
        ) {
            let refs = ReferenceList::from_ids(ids.into_iter().map(ChunkId).collect());
            let bytes = refs.encode();
            let count = ReferenceList::decode_header(&bytes[..ReferenceList::HEADER_LEN]).unwrap();
            prop_assert_eq!(count, refs.ids().len() as u64);
            let mut read: Vec<ChunkId> = Vec::new();
            for part in bytes[ReferenceList::HEADER_LEN..].chunks(32 * stretch) {
                let more = ReferenceList::decode_ids(part, read.last()).unwrap();
                read.extend(more);
            }
            prop_assert_eq!(read.as_slice(), refs.ids());
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ReferenceList::decode(&bytes);
            let _ = Manifest::decode(&bytes);
        }
    }
}
