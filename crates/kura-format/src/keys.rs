//! Vault keys: a random master key, the subkeys derived from it, and key slots that wrap
//! it under a passphrase (Argon2id) or a recovery key. The service stores slots, never a
//! key; losing every passphrase and the recovery key loses the vault.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::FormatError;
use crate::error::random_bytes;

/// Current key slot format version.
pub const KEY_SLOT_VERSION: u32 = 1;

/// The random secret of an encrypted vault. Every other key is derived from it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> crate::Result<Self> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(MasterKey(k))
    }

    fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    /// Key for keyed BLAKE3 chunk ids.
    pub fn id_key(&self) -> [u8; 32] {
        self.derive("kura 2026-11 chunk id key")
    }

    /// Key for blob encryption (AES-256-GCM-SIV).
    pub fn data_key(&self) -> [u8; 32] {
        self.derive("kura 2026-11 blob encryption key")
    }

    /// Key the chunker's gear table is derived from.
    pub fn chunker_key(&self) -> [u8; 32] {
        self.derive("kura 2026-11 chunker gear key")
    }

    /// A fingerprint that identifies the key without revealing it (shown by `key list`).
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive("kura 2026-11 key fingerprint")[..8])
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// A high-entropy key shown once at `kura init --encrypt`, which opens its own key slot.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey([u8; 32]);

impl RecoveryKey {
    /// A new random recovery key.
    pub fn generate() -> crate::Result<Self> {
        let mut k = [0u8; 32];
        random_bytes(&mut k)?;
        Ok(RecoveryKey(k))
    }

    fn wrapping_key(&self) -> [u8; 32] {
        blake3::derive_key("kura 2026-11 recovery key slot", &self.0)
    }
}

impl fmt::Display for RecoveryKey {
    /// `kura-rk-` then 64 hex digits in groups of eight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex::encode(self.0);
        let groups: Vec<&str> = (0..8).map(|i| &hex[i * 8..i * 8 + 8]).collect();
        write!(f, "kura-rk-{}", groups.join("-"))
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

impl FromStr for RecoveryKey {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s
            .trim()
            .trim_start_matches("kura-rk-")
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        let bytes = hex::decode(&digits)
            .map_err(|_| FormatError::malformed("recovery key", "expected kura-rk- and 64 hex digits"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FormatError::malformed("recovery key", "expected 64 hex digits"))?;
        Ok(RecoveryKey(arr))
    }
}

/// Argon2id cost parameters of a passphrase slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended option. The lanes are
    /// computed in parallel, so unlocking takes about an eighth of a second on two cores
    /// of this class of machine (a quarter with one lane). Slots keep their own
    /// parameters, so older slots still open.
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

/// How a slot's wrapping key is obtained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlotKind {
    /// Argon2id of a passphrase.
    Passphrase { salt: ByteBuf, kdf: KdfParams },
    /// Derived from a recovery key.
    Recovery,
}

/// The master key wrapped under one passphrase or recovery key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    pub version: u32,
    /// Random, short, unique within the vault; `kura key remove` names slots by it.
    pub id: String,
    pub label: String,
    pub kind: SlotKind,
    /// Unix seconds.
    pub created: i64,
    pub nonce: ByteBuf,
    /// AES-256-GCM of the master key.
    pub wrapped: ByteBuf,
}

impl KeySlot {
    /// A slot opened by `passphrase`.
    pub fn for_passphrase(
        master: &MasterKey,
        passphrase: &[u8],
        label: &str,
        kdf: KdfParams,
        created: i64,
    ) -> crate::Result<Self> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let kind = SlotKind::Passphrase {
            salt: ByteBuf::from(salt.to_vec()),
            kdf,
        };
        let wrapping = argon2_key(passphrase, &salt, kdf)?;
        Self::seal(master, &wrapping, kind, label, created)
    }

    /// A slot opened by `recovery`.
    pub fn for_recovery(master: &MasterKey, recovery: &RecoveryKey, created: i64) -> crate::Result<Self> {
        Self::seal(
            master,
            &recovery.wrapping_key(),
            SlotKind::Recovery,
            "recovery key",
            created,
        )
    }

    fn seal(
        master: &MasterKey,
        wrapping: &[u8; 32],
        kind: SlotKind,
        label: &str,
        created: i64,
    ) -> crate::Result<Self> {
        let mut id = [0u8; 4];
        random_bytes(&mut id)?;
        let id = hex::encode(id);
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let key = aead_key(wrapping);
        let mut buf = master.0.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(slot_aad(&id)),
            &mut buf,
        )
        .map_err(|_| FormatError::malformed("key slot", "encryption failed"))?;
        Ok(KeySlot {
            version: KEY_SLOT_VERSION,
            id,
            label: label.to_string(),
            kind,
            created,
            nonce: ByteBuf::from(nonce.to_vec()),
            wrapped: ByteBuf::from(buf),
        })
    }

    /// The master key, if `passphrase` opens this slot. Recovery slots also accept the
    /// recovery key's text as the passphrase.
    pub fn open(&self, passphrase: &[u8]) -> crate::Result<MasterKey> {
        let wrapping = match &self.kind {
            SlotKind::Passphrase { salt, kdf } => argon2_key(passphrase, salt, *kdf)?,
            SlotKind::Recovery => {
                let text = std::str::from_utf8(passphrase).map_err(|_| FormatError::WrongPassphrase)?;
                let key: RecoveryKey = text.parse().map_err(|_| FormatError::WrongPassphrase)?;
                key.wrapping_key()
            }
        };
        self.unwrap_with(&wrapping)
    }

    fn unwrap_with(&self, wrapping: &[u8; 32]) -> crate::Result<MasterKey> {
        let nonce: [u8; 12] = self
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| FormatError::malformed("key slot", "nonce is not 12 bytes"))?;
        let key = aead_key(wrapping);
        let mut buf = self.wrapped.to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(slot_aad(&self.id)),
                &mut buf,
            )
            .map_err(|_| FormatError::WrongPassphrase)?;
        let arr: [u8; 32] = plain
            .try_into()
            .map_err(|_| FormatError::malformed("key slot", "wrapped key is not 32 bytes"))?;
        Ok(MasterKey(arr))
    }

    /// CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encoding into memory cannot fail");
        out
    }

    /// Decodes and checks a slot read from storage.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        let slot: KeySlot = ciborium::from_reader(bytes).map_err(|e| FormatError::cbor("key slot", e))?;
        if slot.version != KEY_SLOT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "key slot",
                version: slot.version,
                supported: KEY_SLOT_VERSION,
            });
        }
        if slot.id.len() != 8 || !slot.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FormatError::malformed("key slot", "id is not 8 hex digits"));
        }
        if let SlotKind::Passphrase { kdf, .. } = &slot.kind {
            // Refuse parameters that would make opening the slot a denial of service.
            if kdf.m_cost > 1024 * 1024 || kdf.t_cost > 16 || kdf.p_cost > 16 {
                return Err(FormatError::malformed(
                    "key slot",
                    "Argon2 parameters out of range",
                ));
            }
        }
        Ok(slot)
    }
}

/// The master key from whichever of `slots` `passphrase` opens, or
/// [`FormatError::WrongPassphrase`]. Slots are tried cheapest first: a recovery key is
/// recognised by its form, so Argon2 runs only for real passphrases, and a recovery key's
/// text is never tried as a passphrase. The agent unlocks with it, and the service for
/// one web-restore request.
pub fn open_any_slot(slots: &[KeySlot], passphrase: &[u8]) -> crate::Result<MasterKey> {
    let looks_like_recovery = std::str::from_utf8(passphrase)
        .ok()
        .is_some_and(|s| s.parse::<RecoveryKey>().is_ok());
    for slot in slots {
        let is_recovery = matches!(slot.kind, SlotKind::Recovery);
        if is_recovery != looks_like_recovery {
            continue;
        }
        match slot.open(passphrase) {
            Ok(key) => return Ok(key),
            Err(FormatError::WrongPassphrase) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(FormatError::WrongPassphrase)
}

fn slot_aad(id: &str) -> Vec<u8> {
    let mut aad = b"kura key slot v1 ".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

pub(crate) fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256 key"))
}

fn argon2_key(passphrase: &[u8], salt: &[u8], kdf: KdfParams) -> crate::Result<[u8; 32]> {
    let params = argon2::Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|e| FormatError::malformed("key slot", format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| FormatError::malformed("key slot", format!("Argon2: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn passphrase_slot_round_trip() {
        let master = MasterKey::generate().unwrap();
        let slot = KeySlot::for_passphrase(&master, b"correct horse", "default", FAST, 0).unwrap();
        let decoded = KeySlot::decode(&slot.encode()).unwrap();
        assert_eq!(decoded, slot);
        assert_eq!(decoded.open(b"correct horse").unwrap().0, master.0);
        assert!(matches!(
            decoded.open(b"wrong"),
            Err(FormatError::WrongPassphrase)
        ));
    }

    #[test]
    fn recovery_slot_round_trip() {
        let master = MasterKey::generate().unwrap();
        let rk = RecoveryKey::generate().unwrap();
        let slot = KeySlot::for_recovery(&master, &rk, 0).unwrap();
        let text = rk.to_string();
        assert!(text.starts_with("kura-rk-"));
        assert_eq!(text.parse::<RecoveryKey>().unwrap(), rk);
        assert_eq!(slot.open(text.as_bytes()).unwrap().0, master.0);
        let other = RecoveryKey::generate().unwrap().to_string();
        assert!(slot.open(other.as_bytes()).is_err());
    }

    #[test]
    fn tampered_slot_fails() {
        let master = MasterKey::generate().unwrap();
        let mut slot = KeySlot::for_passphrase(&master, b"pw", "x", FAST, 0).unwrap();
        slot.wrapped[3] ^= 1;
        assert!(slot.open(b"pw").is_err());
    }

    #[test]
    fn hostile_kdf_params_refused() {
        let master = MasterKey::generate().unwrap();
        let mut slot = KeySlot::for_passphrase(&master, b"pw", "x", FAST, 0).unwrap();
        slot.kind = SlotKind::Passphrase {
            salt: ByteBuf::from(vec![0; 16]),
            kdf: KdfParams {
                m_cost: u32::MAX,
                t_cost: 1,
                p_cost: 1,
            },
        };
        assert!(KeySlot::decode(&slot.encode()).is_err());
    }
}
