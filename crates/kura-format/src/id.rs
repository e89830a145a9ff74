//! Chunk ids: 32-byte BLAKE3 digests, keyed in encrypted vaults so they reveal nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FormatError;

/// The id of a chunk (a piece of file content, an image block or a tree): a BLAKE3 digest
/// of its plaintext, keyed with the vault's id key when the vault is encrypted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// Reads an id from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> crate::Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FormatError::malformed("chunk id", format!("{} bytes, want 32", bytes.len())))?;
        Ok(ChunkId(arr))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex characters, for display.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(12);
        s
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.short())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for ChunkId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| FormatError::malformed("chunk id", e.to_string()))?;
        ChunkId::from_slice(&bytes)
    }
}

impl Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = serde_bytes::ByteBuf::deserialize(d)?;
            ChunkId::from_slice(&b).map_err(serde::de::Error::custom)
        }
    }
}

/// Computes chunk ids for one vault: plain BLAKE3 when unencrypted, keyed BLAKE3 when
/// encrypted (so that the service, which sees ids, learns nothing about content).
#[derive(Clone)]
pub enum IdHasher {
    /// Plain BLAKE3; anyone can recompute it (the server does, to check uploads).
    Plain,
    /// BLAKE3 keyed with the vault's id key.
    Keyed([u8; 32]),
}

impl IdHasher {
    /// The id of `data`.
    pub fn id(&self, data: &[u8]) -> ChunkId {
        let hash = match self {
            IdHasher::Plain => blake3::hash(data),
            IdHasher::Keyed(key) => blake3::keyed_hash(key, data),
        };
        ChunkId(*hash.as_bytes())
    }

    /// Whether ids can be recomputed without the vault key.
    pub fn is_plain(&self) -> bool {
        matches!(self, IdHasher::Plain)
    }
}

impl fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdHasher::Plain => f.write_str("IdHasher::Plain"),
            IdHasher::Keyed(_) => f.write_str("IdHasher::Keyed(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_id_is_blake3() {
        let id = IdHasher::Plain.id(b"abc");
        assert_eq!(
            id.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    #[test]
    fn keyed_id_differs_and_depends_on_key() {
        let a = IdHasher::Keyed([1; 32]).id(b"abc");
        let b = IdHasher::Keyed([2; 32]).id(b"abc");
        assert_ne!(a, b);
        assert_ne!(a, IdHasher::Plain.id(b"abc"));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = IdHasher::Plain.id(b"x");
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        assert!("abcd".parse::<ChunkId>().is_err());
        assert!("zz".repeat(32).parse::<ChunkId>().is_err());
    }
}
