//! Packs: many blobs in one immutable object, followed by a trailer that lists every
//! blob (id, kind, offset, length, raw length), so the chunk index can be rebuilt from
//! storage alone.
//!
//! Layout (`docs/format.md`): blob bytes back to back; trailer entries of 45 bytes each;
//! a 48-byte footer: entry count (u32 LE), BLAKE3 of the entries (32), version (u8),
//! three zero bytes, `"KURAPACK"`. A pack's id is the BLAKE3 of all its bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::take;
use crate::{BlobKind, ChunkId, FormatError};

const MAGIC: &[u8; 8] = b"KURAPACK";
/// Current pack format version.
pub const PACK_VERSION: u8 = 1;
/// Bytes of one trailer entry.
pub const ENTRY_LEN: usize = 32 + 1 + 4 + 4 + 4;
/// Bytes of the fixed footer at the very end of a pack.
pub const FOOTER_LEN: usize = 4 + 32 + 1 + 3 + 8;
/// Packs are cut at about this size.
pub const TARGET_PACK_SIZE: usize = 16 << 20;
/// No pack may list more blobs than this (bounds the trailer a reader allocates).
pub const MAX_ENTRIES: u32 = 1 << 20;

/// The id of a pack: BLAKE3 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub [u8; 32]);

impl PackId {
    /// The id of the pack made of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        PackId(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackId({})", &self.to_hex()[..12])
    }
}

impl FromStr for PackId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PackId(ChunkId::from_str(s)?.0))
    }
}

/// Where one blob sits in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: ChunkId,
    pub kind: BlobKind,
    pub offset: u32,
    /// Stored (blob) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// The blob list of a pack being built, wherever its bytes go: where each blob sits, when
/// the pack is full, and the trailer that ends it. [`PackWriter`] keeps the bytes in
/// memory; a local vault writes them straight into the pack's file.
#[derive(Default)]
pub struct PackEntries {
    entries: Vec<PackEntry>,
    len: usize,
}

impl PackEntries {
    /// Records a blob of `length` stored bytes appended at the end of the pack.
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, length: usize, raw_length: u32) {
        self.entries.push(PackEntry {
            id,
            kind,
            offset: self.len as u32,
            length: length as u32,
            raw_length,
        });
        self.len += length;
    }

    /// Bytes of blobs added so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the pack has reached its target size.
    pub fn is_full(&self) -> bool {
        self.len >= TARGET_PACK_SIZE || self.entries.len() >= MAX_ENTRIES as usize
    }

    /// The trailer entries and footer that follow the blobs.
    pub fn trailer(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN + FOOTER_LEN);
        for e in &self.entries {
            out.extend_from_slice(e.id.as_bytes());
            out.push(e.kind as u8);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        let hash = blake3::hash(&out);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(hash.as_bytes());
        out.push(PACK_VERSION);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(MAGIC);
        out
    }

    /// The entries, in pack order.
    pub fn into_entries(self) -> Vec<PackEntry> {
        self.entries
    }
}

/// Builds one pack in memory.
#[derive(Default)]
pub struct PackWriter {
    bytes: Vec<u8>,
    entries: PackEntries,
}

impl PackWriter {
    /// An empty pack.
    pub fn new() -> Self {
        PackWriter {
            bytes: Vec::with_capacity(TARGET_PACK_SIZE + (1 << 20)),
            entries: PackEntries::default(),
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, blob: &[u8], raw_length: u32) {
        self.entries.add(id, kind, blob.len(), raw_length);
        self.bytes.extend_from_slice(blob);
    }

    /// Bytes of blobs added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the pack has reached its target size.
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// Writes the trailer and returns the pack's id, bytes and entries.
    pub fn finish(mut self) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        self.bytes.extend_from_slice(&self.entries.trailer());
        (PackId::of(&self.bytes), self.bytes, self.entries.into_entries())
    }
}

/// Builds one pack into a writer (a file) as its blobs come, hashing it on the way, so
/// that no pack is held in memory and each blob is written while it is still in cache.
pub struct PackStream<W> {
    out: W,
    entries: PackEntries,
    hasher: blake3::Hasher,
}

/// A pack written to the end by [`PackStream::finish`].
pub struct StreamedPack<W> {
    pub id: PackId,
    /// Bytes of the whole pack, trailer included.
    pub size: u64,
    pub out: W,
    pub entries: Vec<PackEntry>,
}

impl<W: std::io::Write> PackStream<W> {
    /// An empty pack written to `out`.
    pub fn new(out: W) -> Self {
        PackStream {
            out,
            entries: PackEntries::default(),
            hasher: blake3::Hasher::new(),
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, blob: &[u8], raw_length: u32) -> std::io::Result<()> {
        self.out.write_all(blob)?;
        self.hasher.update(blob);
        self.entries.add(id, kind, blob.len(), raw_length);
        Ok(())
    }

    /// What was added so far.
    pub fn entries(&self) -> &PackEntries {
        &self.entries
    }

    /// Writes the trailer and flushes the writer.
    pub fn finish(mut self) -> std::io::Result<StreamedPack<W>> {
        let trailer = self.entries.trailer();
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        self.hasher.update(&trailer);
        Ok(StreamedPack {
            id: PackId(*self.hasher.finalize().as_bytes()),
            size: (self.entries.len() + trailer.len()) as u64,
            out: self.out,
            entries: self.entries.into_entries(),
        })
    }
}

/// Parsed pack footer: how long the trailer before it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackFooter {
    pub entry_count: u32,
    trailer_hash: [u8; 32],
}

impl PackFooter {
    /// Parses the last [`FOOTER_LEN`] bytes of a pack.
    pub fn parse(footer: &[u8]) -> crate::Result<Self> {
        if footer.len() != FOOTER_LEN {
            return Err(FormatError::Truncated {
                what: "pack footer",
                need: FOOTER_LEN,
                have: footer.len(),
            });
        }
        if &footer[40..48] != MAGIC {
            return Err(FormatError::BadMagic { what: "pack" });
        }
        if footer[36] != PACK_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "pack",
                version: footer[36] as u32,
                supported: PACK_VERSION as u32,
            });
        }
        if footer[37..40] != [0, 0, 0] {
            return Err(FormatError::malformed(
                "pack footer",
                "reserved bytes are not zero",
            ));
        }
        let entry_count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes"));
        if entry_count > MAX_ENTRIES {
            return Err(FormatError::malformed(
                "pack",
                format!("{entry_count} entries is too many"),
            ));
        }
        Ok(PackFooter {
            entry_count,
            trailer_hash: footer[4..36].try_into().expect("32 bytes"),
        })
    }

    /// Bytes of the trailer entries that precede the footer.
    pub fn trailer_len(&self) -> usize {
        self.entry_count as usize * ENTRY_LEN
    }
}

/// Parses a pack's trailer entries. `trailer` is the `footer.trailer_len()` bytes before
/// the footer; `blob_area` is the pack length minus trailer and footer. Checks that every
/// blob lies inside the blob area and that blobs do not overlap.
pub fn parse_trailer(footer: &PackFooter, trailer: &[u8], blob_area: u64) -> crate::Result<Vec<PackEntry>> {
    if trailer.len() != footer.trailer_len() {
        return Err(FormatError::Truncated {
            what: "pack trailer",
            need: footer.trailer_len(),
            have: trailer.len(),
        });
    }
    if blake3::hash(trailer).as_bytes() != &footer.trailer_hash {
        return Err(FormatError::malformed("pack trailer", "checksum mismatch"));
    }
    let mut input = trailer;
    let mut entries = Vec::with_capacity(footer.entry_count as usize);
    let mut end_of_previous = 0u64;
    for _ in 0..footer.entry_count {
        let e = take(&mut input, ENTRY_LEN, "pack trailer entry")?;
        let u32_at = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().expect("4 bytes"));
        let entry = PackEntry {
            id: ChunkId::from_slice(&e[..32])?,
            kind: BlobKind::from_u8(e[32])?,
            offset: u32_at(33),
            length: u32_at(37),
            raw_length: u32_at(41),
        };
        let end = entry.offset as u64 + entry.length as u64;
        if (entry.offset as u64) < end_of_previous || end > blob_area {
            return Err(FormatError::malformed(
                "pack trailer",
                "blob outside the pack or overlapping",
            ));
        }
        end_of_previous = end;
        entries.push(entry);
    }
    Ok(entries)
}

/// Parses the trailer of a whole pack held in memory.
pub fn parse_pack(pack: &[u8]) -> crate::Result<Vec<PackEntry>> {
    if pack.len() < FOOTER_LEN {
        return Err(FormatError::Truncated {
            what: "pack",
            need: FOOTER_LEN,
            have: pack.len(),
        });
    }
    let footer = PackFooter::parse(&pack[pack.len() - FOOTER_LEN..])?;
    let trailer_len = footer.trailer_len();
    let rest = pack.len() - FOOTER_LEN;
    if rest < trailer_len {
        return Err(FormatError::Truncated {
            what: "pack trailer",
            need: trailer_len,
            have: rest,
        });
    }
    parse_trailer(
        &footer,
        &pack[rest - trailer_len..rest],
        (rest - trailer_len) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobCodec;
    use proptest::prelude::*;

    fn build(blobs: &[Vec<u8>]) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let codec = BlobCodec::plain(3);
        let mut w = PackWriter::new();
        for b in blobs {
            let id = codec.id(b);
            w.add(id, BlobKind::Data, &codec.seal(&id, b).unwrap(), b.len() as u32);
        }
        w.finish()
    }

    #[test]
    fn empty_pack_parses() {
        let (_, bytes, entries) = PackWriter::new().finish();
        assert!(entries.is_empty());
        assert_eq!(parse_pack(&bytes).unwrap(), entries);
    }

    #[test]
    fn truncation_and_tampering_detected() {
        let (_, bytes, _) = build(&[b"a".repeat(100), b"b".repeat(300)]);
        for cut in 1..bytes.len() {
            assert!(parse_pack(&bytes[..bytes.len() - cut]).is_err());
        }
        let n = bytes.len();
        let mut bad = bytes.clone();
        bad[n - FOOTER_LEN - 3] ^= 1;
        assert!(parse_pack(&bad).is_err());
    }

    #[test]
    fn a_streamed_pack_equals_one_built_in_memory() {
        let codec = BlobCodec::plain(3);
        let mut memory = PackWriter::new();
        let mut stream = PackStream::new(Vec::new());
        for b in [b"a".repeat(100), b"tree".to_vec(), b"c".repeat(5000)] {
            let id = codec.id(&b);
            let blob = codec.seal(&id, &b).unwrap();
            memory.add(id, BlobKind::Data, &blob, b.len() as u32);
            stream.add(id, BlobKind::Data, &blob, b.len() as u32).unwrap();
        }
        let (id, bytes, entries) = memory.finish();
        let streamed = stream.finish().unwrap();
        assert_eq!((streamed.id, streamed.size), (id, bytes.len() as u64));
        assert_eq!((streamed.out, streamed.entries), (bytes, entries));
    }

    proptest! {
        #[test]
        fn round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20)) {
            let (id, bytes, entries) = build(&blobs);
            prop_assert_eq!(PackId::of(&bytes), id);
            prop_assert_eq!(parse_pack(&bytes).unwrap(), entries.clone());
            let codec = BlobCodec::plain(3);
            for (e, raw) in entries.iter().zip(&blobs) {
                let blob = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&codec.open(&e.id, blob).unwrap(), raw);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_pack(&bytes);
        }
    }
}
