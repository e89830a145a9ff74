//! The vault configuration: written once at `init`, read by everyone who opens the vault.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::random_bytes;
use crate::{BlobCodec, ChunkerParams, FileChunker, FormatError, MasterKey};

/// Current vault configuration version.
pub const CONFIG_VERSION: u32 = 1;

/// How a vault cuts, names and encodes its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    pub version: u32,
    /// Random id, hex.
    pub vault_id: String,
    /// Unix seconds.
    pub created: i64,
    pub encrypted: bool,
    pub chunker: ChunkerParams,
    /// Gear table seed of an unencrypted vault (encrypted vaults derive it from the key).
    pub chunker_seed: Option<ByteBuf>,
    /// zstd level; 0 stores uncompressed.
    pub compression_level: i32,
    /// Fixed chunk size of image backups.
    pub image_chunk_size: u32,
}

impl VaultConfig {
    /// A new configuration with default parameters and fresh random ids.
    pub fn new(encrypted: bool, created: i64) -> crate::Result<Self> {
        let mut id = [0u8; 16];
        random_bytes(&mut id)?;
        let chunker_seed = if encrypted {
            None
        } else {
            let mut seed = [0u8; 32];
            random_bytes(&mut seed)?;
            Some(ByteBuf::from(seed.to_vec()))
        };
        Ok(VaultConfig {
            version: CONFIG_VERSION,
            vault_id: hex::encode(id),
            created,
            encrypted,
            chunker: ChunkerParams::default(),
            chunker_seed,
            compression_level: 3,
            image_chunk_size: 256 * 1024,
        })
    }

    /// CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// Decodes and validates.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let c: VaultConfig =
            ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("vault config", e))?;
        if c.version != CONFIG_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "vault config",
                version: c.version,
                supported: CONFIG_VERSION,
            });
        }
        c.chunker.validate()?;
        if c.encrypted == c.chunker_seed.is_some() {
            return Err(FormatError::malformed(
                "vault config",
                "chunker seed must be set exactly for unencrypted vaults",
            ));
        }
        if let Some(seed) = &c.chunker_seed
            && seed.len() != 32
        {
            return Err(FormatError::malformed(
                "vault config",
                "chunker seed is not 32 bytes",
            ));
        }
        if !(0..=22).contains(&c.compression_level) {
            return Err(FormatError::malformed(
                "vault config",
                "compression level out of range",
            ));
        }
        if !(4096..=16 << 20).contains(&c.image_chunk_size) || !c.image_chunk_size.is_power_of_two() {
            return Err(FormatError::malformed(
                "vault config",
                "image chunk size out of range",
            ));
        }
        Ok(c)
    }

    /// The blob codec and file chunker of this vault. `key` must be given exactly when
    /// the vault is encrypted.
    pub fn codec(&self, key: Option<&MasterKey>) -> crate::Result<(BlobCodec, FileChunker)> {
        match (self.encrypted, key) {
            (true, Some(key)) => Ok((
                BlobCodec::encrypted(key, self.compression_level),
                FileChunker::new(self.chunker, &key.chunker_key())?,
            )),
            (false, None) => {
                let seed: [u8; 32] = self
                    .chunker_seed
                    .as_ref()
                    .and_then(|s| s.as_slice().try_into().ok())
                    .ok_or_else(|| FormatError::malformed("vault config", "missing chunker seed"))?;
                Ok((
                    BlobCodec::plain(self.compression_level),
                    FileChunker::new(self.chunker, &seed)?,
                ))
            }
            (true, None) => Err(FormatError::KeyMismatch(
                "the vault is encrypted; a passphrase is needed",
            )),
            (false, Some(_)) => Err(FormatError::KeyMismatch("the vault is not encrypted")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_codec() {
        for enc in [false, true] {
            let c = VaultConfig::new(enc, 5).unwrap();
            let d = VaultConfig::decode(&c.encode()).unwrap();
            assert_eq!(c, d);
            let key = MasterKey::generate().unwrap();
            assert!(d.codec(if enc { Some(&key) } else { None }).is_ok());
            assert!(d.codec(if enc { None } else { Some(&key) }).is_err());
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(VaultConfig::decode(b"not cbor").is_err());
        let mut c = VaultConfig::new(false, 0).unwrap();
        c.compression_level = 99;
        assert!(VaultConfig::decode(&c.encode()).is_err());
    }
}
