//! Secrets the service hands out and how it keeps them: random bearer tokens (stored only
//! as a BLAKE3 hash), passwords (stored only as Argon2id PHC strings), and the few
//! secrets it must read back (TOTP secrets), sealed with the [`ServiceKey`].
//!
//! Tokens carry 256 random bits, so a fast unsalted hash is enough to make a stolen
//! database useless for logging in; passwords are chosen by people and get Argon2id.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// What a bearer token is for; the prefix makes a leaked token recognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Operator,
    Registration,
    AgentCredential,
    /// A portal session cookie.
    Session,
    /// A tenant user's API token.
    ApiToken,
    /// A password reset link's token.
    PasswordReset,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Operator => "kura_op_",
            TokenKind::Registration => "kura_reg_",
            TokenKind::AgentCredential => "kura_agent_",
            TokenKind::Session => "kura_sess_",
            TokenKind::ApiToken => "kura_api_",
            TokenKind::PasswordReset => "kura_reset_",
        }
    }
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random source failed");
    hex::encode(buffer)
}

/// A new token of `kind`: its prefix and 256 random bits.
pub fn new_token(kind: TokenKind) -> String {
    format!("{}{}", kind.prefix(), random_hex(32))
}

/// The form in which a token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A random password of 20 characters from an alphabet without look-alikes
/// (about 115 bits).
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut password = String::with_capacity(20);
    let mut byte = [0u8; 1];
    while password.len() < 20 {
        getrandom::fill(&mut byte).expect("the operating system's random source failed");
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(byte[0]) < limit {
            password.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    password
}

/// Argon2id PHC string of `password`. Slow on purpose: call it off the async runtime.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("Argon2id with default parameters cannot fail")
        .to_string()
}

/// Whether `password` matches a PHC string made by [`hash_password`].
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Writes a file only its owner can read (mode 0600), replacing it atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", random_hex(4)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Why a sealed secret could not be opened, or a key not read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the service key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("a stored secret is not sealed by this service (expected `k1:`)")]
    NotSealed,
    #[error("a stored secret cannot be opened: it was sealed with another service key, or altered")]
    WrongKeyOrAltered,
}

/// The service's key for the secrets it must read back (TOTP secrets): AES-256-GCM with
/// a random nonce, each value bound to what it belongs to (`context`, e.g. the user), so
/// a stolen database (or a value copied to another row) is useless without the key.
/// Sealed values read `k1:` and base64. All servers of one service share the key.
///
/// The same key also yields the service's Ed25519 signing key (for deletion records), so
/// every server signs with one key and a metadata backup of the service key keeps it.
pub struct ServiceKey {
    sealing: aws_lc_rs::aead::LessSafeKey,
    signing: aws_lc_rs::signature::Ed25519KeyPair,
}

/// What the signing key is derived under: a new purpose gets a new context, never this one.
const SIGNING_KEY_CONTEXT: &str = "kura 2026-12 service signing key (ed25519 seed)";

const SEALED_PREFIX: &str = "k1:";
const NONCE_LEN: usize = 12;

impl ServiceKey {
    /// A key from its 64 hex digits.
    pub fn from_hex(text: &str) -> Result<ServiceKey, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKey)?;
        let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &bytes)
            .map_err(|_| SealError::BadKey)?;
        let seed = blake3::derive_key(SIGNING_KEY_CONTEXT, &bytes);
        let signing = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| SealError::BadKey)?;
        Ok(ServiceKey {
            sealing: aws_lc_rs::aead::LessSafeKey::new(key),
            signing,
        })
    }

    /// The Ed25519 signature of `message` by the service's signing key.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).as_ref().to_vec()
    }

    /// The service's Ed25519 public key (32 bytes), for checking what it signed.
    pub fn signing_public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.signing.public_key().as_ref().to_vec()
    }

    /// 64 hex digits of a new random key.
    pub fn generate_hex() -> String {
        random_hex(32)
    }

    /// Whether a stored value is sealed (values from before sealing are not).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(SEALED_PREFIX)
    }

    /// Seals `plain` for `context`.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        use aws_lc_rs::aead::{Aad, Nonce};
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let mut sealed = plain.as_bytes().to_vec();
        self.sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any message this size");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", data_encoding::BASE64.encode(&out))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(SealError::NotSealed)?;
        let bytes = data_encoding::BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| SealError::WrongKeyOrAltered)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::WrongKeyOrAltered);
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKeyOrAltered)?;
        let mut body = body.to_vec();
        let plain = self
            .sealing
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::WrongKeyOrAltered)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::WrongKeyOrAltered)
    }
}

/// Whether `signature` is an Ed25519 signature of `message` by `public_key`: what anyone
/// holding the service's public key can check, offline.
pub fn signature_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let token = new_token(TokenKind::Registration);
        assert!(token.starts_with("kura_reg_"));
        assert_eq!(token.len(), "kura_reg_".len() + 64);
        assert_ne!(token, new_token(TokenKind::Registration));
        assert_eq!(token_hash(&token), token_hash(&token));
        assert_ne!(token_hash(&token), token);
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let password = new_password();
        assert_eq!(password.len(), 20);
        let phc = hash_password(&password);
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&password, &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password(&password, "not a phc string"));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let key = ServiceKey::from_hex(&ServiceKey::generate_hex()).unwrap();
        let sealed = key.seal("JBSWY3DPEHPK3PXP", "totp:user-a");
        assert!(ServiceKey::is_sealed(&sealed) && !sealed.contains("JBSWY3DP"));
        assert_ne!(
            sealed,
            key.seal("JBSWY3DPEHPK3PXP", "totp:user-a"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed, "totp:user-a").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(matches!(
            key.open(&sealed, "totp:user-b"),
            Err(SealError::WrongKeyOrAltered)
        ));
        let other = ServiceKey::from_hex(&ServiceKey::generate_hex()).unwrap();
        assert!(matches!(
            other.open(&sealed, "totp:user-a"),
            Err(SealError::WrongKeyOrAltered)
        ));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            key.open(std::str::from_utf8(&altered).unwrap(), "totp:user-a")
                .is_err()
        );
        assert!(matches!(
            key.open("JBSWY3DPEHPK3PXP", "totp:user-a"),
            Err(SealError::NotSealed)
        ));
        assert!(matches!(ServiceKey::from_hex("abcd"), Err(SealError::BadKey)));
    }

    #[test]
    fn signatures_check_only_with_their_key_and_message() {
        let hex = ServiceKey::generate_hex();
        let key = ServiceKey::from_hex(&hex).unwrap();
        let again = ServiceKey::from_hex(&hex).unwrap();
        assert_eq!(
            key.signing_public_key(),
            again.signing_public_key(),
            "one key per service key"
        );
        assert_eq!(key.signing_public_key().len(), 32);
        let signature = key.sign(b"record");
        assert!(signature_valid(&key.signing_public_key(), b"record", &signature));
        assert!(!signature_valid(&key.signing_public_key(), b"recorc", &signature));
        let other = ServiceKey::from_hex(&ServiceKey::generate_hex()).unwrap();
        assert!(!signature_valid(
            &other.signing_public_key(),
            b"record",
            &signature
        ));
        assert!(!signature_valid(b"short", b"record", &signature));
    }
}
