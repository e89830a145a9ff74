//! Secrets the service hands out and how it keeps them: random bearer tokens (stored only
//! as a BLAKE3 hash), and passwords (stored only as Argon2id PHC strings).
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
}
