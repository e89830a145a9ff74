//! Blobs: one stored chunk. A small header, then the payload — zstd-compressed when that
//! is smaller, then sealed with AES-256-GCM-SIV when the vault is encrypted, with the
//! chunk id and header bound as associated data so a blob cannot be moved or relabelled.
//!
//! Layout (`docs/format.md`): `"KB"`, version `1`, flags (bit 0 zstd, bit 1 encrypted),
//! raw length (u32 LE); then, when encrypted, a 12-byte nonce and ciphertext plus 16-byte
//! tag; otherwise the (possibly compressed) payload.

use std::cell::RefCell;

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::error::{random_bytes, take};
use crate::{ChunkId, FormatError, IdHasher, MasterKey};

const MAGIC: &[u8; 2] = b"KB";
/// Current blob format version.
pub const BLOB_VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;
const HEADER_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest raw blob accepted (trees of huge directories are the largest blobs).
pub const MAX_RAW_LEN: usize = 256 << 20;

/// What a blob holds; recorded in pack trailers and the chunk index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// File content or an image block.
    Data = 0,
    /// An encoded directory tree.
    Tree = 1,
}

impl BlobKind {
    /// From the byte stored in a pack trailer.
    pub fn from_u8(v: u8) -> crate::Result<Self> {
        match v {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(FormatError::malformed("blob kind", format!("unknown kind {v}"))),
        }
    }
}

/// What the header of a blob says, readable without any key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    pub compressed: bool,
    pub encrypted: bool,
    pub raw_len: u32,
}

impl BlobHeader {
    /// Parses and checks the header and the payload length of a whole blob. The server
    /// uses this to validate encrypted uploads it cannot open.
    pub fn parse(blob: &[u8]) -> crate::Result<Self> {
        let mut input = blob;
        let head = take(&mut input, HEADER_LEN, "blob header")?;
        if &head[..2] != MAGIC {
            return Err(FormatError::BadMagic { what: "blob" });
        }
        if head[2] != BLOB_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "blob",
                version: head[2] as u32,
                supported: BLOB_VERSION as u32,
            });
        }
        let flags = head[3];
        if flags & !(FLAG_ZSTD | FLAG_ENCRYPTED) != 0 {
            return Err(FormatError::malformed(
                "blob",
                format!("unknown flags {flags:#x}"),
            ));
        }
        let raw_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        if raw_len as usize > MAX_RAW_LEN {
            return Err(FormatError::malformed(
                "blob",
                format!("raw length {raw_len} too large"),
            ));
        }
        let header = BlobHeader {
            compressed: flags & FLAG_ZSTD != 0,
            encrypted: flags & FLAG_ENCRYPTED != 0,
            raw_len,
        };
        let body = input.len();
        if header.encrypted && body < NONCE_LEN + TAG_LEN {
            return Err(FormatError::Truncated {
                what: "encrypted blob",
                need: NONCE_LEN + TAG_LEN,
                have: body,
            });
        }
        if !header.encrypted && !header.compressed && body != raw_len as usize {
            return Err(FormatError::malformed(
                "blob",
                "stored length differs from raw length",
            ));
        }
        Ok(header)
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut flags = 0;
        if self.compressed {
            flags |= FLAG_ZSTD;
        }
        if self.encrypted {
            flags |= FLAG_ENCRYPTED;
        }
        let mut out = [0u8; HEADER_LEN];
        out[..2].copy_from_slice(MAGIC);
        out[2] = BLOB_VERSION;
        out[3] = flags;
        out[4..].copy_from_slice(&self.raw_len.to_le_bytes());
        out
    }
}

/// Turns chunk plaintext into stored blobs and back, for one vault.
pub struct BlobCodec {
    hasher: IdHasher,
    aead: Option<LessSafeKey>,
    level: i32,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

impl BlobCodec {
    /// Codec of an unencrypted vault: plain BLAKE3 ids, no encryption.
    pub fn plain(level: i32) -> Self {
        BlobCodec {
            hasher: IdHasher::Plain,
            aead: None,
            level,
        }
    }

    /// Codec of an encrypted vault.
    pub fn encrypted(master: &MasterKey, level: i32) -> Self {
        let key = UnboundKey::new(&AES_256_GCM_SIV, &master.data_key()).expect("32-byte key");
        BlobCodec {
            hasher: IdHasher::Keyed(master.id_key()),
            aead: Some(LessSafeKey::new(key)),
            level,
        }
    }

    /// Whether blobs are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.aead.is_some()
    }

    /// The id hasher of this vault.
    pub fn hasher(&self) -> &IdHasher {
        &self.hasher
    }

    /// The id of `data`.
    pub fn id(&self, data: &[u8]) -> ChunkId {
        self.hasher.id(data)
    }

    /// Encodes `data` (whose id is `id`) as a stored blob. The payload is compressed
    /// straight into the blob and encrypted in place there: one pass over the bytes each,
    /// no intermediate buffers (they cost a copy and an allocation per chunk).
    pub fn seal(&self, id: &ChunkId, data: &[u8]) -> crate::Result<Vec<u8>> {
        if data.len() > MAX_RAW_LEN {
            return Err(FormatError::malformed(
                "blob",
                format!("{} bytes is larger than the limit", data.len()),
            ));
        }
        let prefix = HEADER_LEN + if self.aead.is_some() { NONCE_LEN } else { 0 };
        let mut out = Vec::with_capacity(prefix + data.len() + TAG_LEN);
        out.resize(prefix, 0);
        let compressed = self.level != 0 && compress_into(data, self.level, &mut out)?;
        if !compressed {
            out.extend_from_slice(data);
        }
        let header = BlobHeader {
            compressed,
            encrypted: self.aead.is_some(),
            raw_len: data.len() as u32,
        }
        .encode();
        out[..HEADER_LEN].copy_from_slice(&header);
        if let Some(key) = &self.aead {
            let mut nonce = [0u8; NONCE_LEN];
            random_bytes(&mut nonce)?;
            out[HEADER_LEN..prefix].copy_from_slice(&nonce);
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad(id, &header)),
                    &mut out[prefix..],
                )
                .map_err(|_| FormatError::malformed("blob", "encryption failed"))?;
            out.extend_from_slice(tag.as_ref());
        }
        Ok(out)
    }

    /// Decodes a stored blob and checks that it is the content of `id`. In an encrypted
    /// vault the AEAD tag proves that: `id` is part of the authenticated data, and only a
    /// holder of the data key, who derived `id` from the plaintext, can make a valid tag.
    /// So the id is recomputed only for unencrypted blobs, which have nothing else.
    pub fn open(&self, id: &ChunkId, blob: &[u8]) -> crate::Result<Vec<u8>> {
        self.decode(id, blob, self.aead.is_none())
    }

    /// Like [`open`](Self::open), and recomputes the id of every blob, encrypted or not:
    /// for `check --read-data`, which must also catch a writer that sealed the wrong bytes.
    pub fn open_rehashed(&self, id: &ChunkId, blob: &[u8]) -> crate::Result<Vec<u8>> {
        self.decode(id, blob, true)
    }

    fn decode(&self, id: &ChunkId, blob: &[u8], rehash: bool) -> crate::Result<Vec<u8>> {
        let header = BlobHeader::parse(blob)?;
        let mut body = &blob[HEADER_LEN..];
        // The plaintext payload: decrypted into a buffer of its own, or the stored bytes.
        let decrypted = match (&self.aead, header.encrypted) {
            (Some(key), true) => {
                let nonce: [u8; NONCE_LEN] = take(&mut body, NONCE_LEN, "blob nonce")?
                    .try_into()
                    .expect("12 bytes");
                let mut payload = body.to_vec();
                let n = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad(id, &blob[..HEADER_LEN])),
                        &mut payload,
                    )
                    .map_err(|_| FormatError::AuthenticationFailed { what: "blob" })?
                    .len();
                payload.truncate(n);
                Some(payload)
            }
            (None, false) => None,
            (Some(_), false) => {
                return Err(FormatError::KeyMismatch(
                    "blob is not encrypted in an encrypted vault",
                ));
            }
            (None, true) => {
                return Err(FormatError::KeyMismatch(
                    "blob is encrypted; the vault key is needed",
                ));
            }
        };
        let data = match (header.compressed, decrypted) {
            (true, decrypted) => decompress(decrypted.as_deref().unwrap_or(body), header.raw_len as usize)?,
            // Stored uncompressed: the decrypted buffer is the data, without another copy.
            (false, Some(decrypted)) => decrypted,
            (false, None) => body.to_vec(),
        };
        if data.len() != header.raw_len as usize {
            return Err(FormatError::malformed(
                "blob",
                "decoded length differs from header",
            ));
        }
        if rehash && self.hasher.id(&data) != *id {
            return Err(FormatError::HashMismatch(id.to_hex()));
        }
        Ok(data)
    }
}

fn aad(id: &ChunkId, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + HEADER_LEN);
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(header);
    aad
}

/// Appends `data` compressed with zstd at `level` to `out` and returns true, or leaves
/// `out` as it was and returns false when that would not save anything.
fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> crate::Result<bool> {
    if data.len() < 64 {
        return Ok(false);
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c =
                zstd::bulk::Compressor::new(level).map_err(|e| FormatError::Compression(e.to_string()))?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        let start = out.len();
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        match c.compress_to_buffer(data, &mut cursor) {
            Ok(n) if n < data.len() => Ok(true),
            // An error here means the output did not fit: it would not be smaller.
            Ok(_) | Err(_) => {
                out.truncate(start);
                Ok(false)
            }
        }
    })
}

fn decompress(data: &[u8], raw_len: usize) -> crate::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot =
                Some(zstd::bulk::Decompressor::new().map_err(|e| FormatError::Compression(e.to_string()))?);
        }
        let d = slot.as_mut().expect("set above");
        let mut out = Vec::with_capacity(raw_len);
        d.decompress_to_buffer(data, &mut out)
            .map_err(|e| FormatError::Compression(e.to_string()))?;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codecs() -> Vec<BlobCodec> {
        let master = MasterKey::generate().unwrap();
        vec![
            BlobCodec::plain(3),
            BlobCodec::plain(0),
            BlobCodec::encrypted(&master, 3),
            BlobCodec::encrypted(&master, 0),
        ]
    }

    #[test]
    fn compressible_data_is_compressed() {
        let codec = BlobCodec::plain(3);
        let data = vec![7u8; 100_000];
        let id = codec.id(&data);
        let blob = codec.seal(&id, &data).unwrap();
        assert!(blob.len() < 1000);
        assert!(BlobHeader::parse(&blob).unwrap().compressed);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let codec = BlobCodec::plain(3);
        let mut data = vec![0u8; 10_000];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        let id = codec.id(&data);
        let blob = codec.seal(&id, &data).unwrap();
        assert!(!BlobHeader::parse(&blob).unwrap().compressed);
        assert_eq!(blob.len(), data.len() + HEADER_LEN);
    }

    #[test]
    fn wrong_id_is_detected() {
        for codec in codecs() {
            let id = codec.id(b"hello world");
            let blob = codec.seal(&id, b"hello world").unwrap();
            let other = codec.id(b"other");
            assert!(codec.open(&other, &blob).is_err());
        }
    }

    #[test]
    fn rehashing_catches_a_blob_sealed_under_the_wrong_id() {
        for codec in codecs() {
            let wrong = codec.id(b"what the id was made from");
            let blob = codec.seal(&wrong, b"what was sealed").unwrap();
            assert!(codec.open_rehashed(&wrong, &blob).is_err());
            // Without encryption nothing but the id vouches for the bytes.
            assert_eq!(codec.open(&wrong, &blob).is_ok(), codec.is_encrypted());
        }
    }

    #[test]
    fn flipped_bit_never_yields_wrong_data() {
        for codec in codecs() {
            let data = b"some data that is long enough to be compressed maybe, some data".repeat(10);
            let id = codec.id(&data);
            let blob = codec.seal(&id, &data).unwrap();
            for i in 0..blob.len() {
                let mut bad = blob.clone();
                bad[i] ^= 0x10;
                // Either refused, or (a flip in a field zstd ignores) the exact original:
                // corruption never yields different data.
                if let Ok(out) = codec.open(&id, &bad) {
                    assert_eq!(out, data, "flip at {i} gave wrong data");
                }
            }
        }
    }

    #[test]
    fn encrypted_blob_needs_key() {
        let master = MasterKey::generate().unwrap();
        let enc = BlobCodec::encrypted(&master, 3);
        let id = enc.id(b"secret");
        let blob = enc.seal(&id, b"secret").unwrap();
        assert!(matches!(
            BlobCodec::plain(3).open(&id, &blob),
            Err(FormatError::KeyMismatch(_))
        ));
        let other = BlobCodec::encrypted(&MasterKey::generate().unwrap(), 3);
        assert!(other.open(&id, &blob).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), repeat in 1usize..20) {
            let data = data.repeat(repeat);
            for codec in codecs() {
                let id = codec.id(&data);
                let blob = codec.seal(&id, &data).unwrap();
                BlobHeader::parse(&blob).unwrap();
                prop_assert_eq!(codec.open(&id, &blob).unwrap(), data.clone());
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BlobHeader::parse(&bytes);
            let codec = BlobCodec::plain(3);
            let _ = codec.open(&ChunkId([0; 32]), &bytes);
        }
    }
}
