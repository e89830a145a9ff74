//! Login IDs and the password policy, and password hashing off the async runtime.

use std::sync::OnceLock;

use crate::secrets::{hash_password, random_hex, verify_password};
use crate::{ServiceError, ServiceResult};

/// Shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 12;
/// Longest password accepted (Argon2 input is bounded so a request cannot be costly).
pub const MAX_PASSWORD_LENGTH: usize = 256;

/// Well-known passwords long enough to pass the length rule, refused by the policy.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The form in which login IDs are stored and compared.
pub fn normalize_login(text: &str) -> String {
    text.trim().to_lowercase()
}

/// A login ID: 3 to 64 characters of `a-z 0-9 . _ @ -`, starting with a letter or digit.
pub fn validate_login(login: &str) -> ServiceResult<()> {
    let valid = (3..=64).contains(&login.len())
        && login.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "invalid login ID: use 3 to 64 characters a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit",
        ))
    }
}

/// The password policy: long enough, not the login ID, not a well-known password.
pub fn check_password_policy(login: &str, password: &str) -> ServiceResult<()> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH {
        return Err(ServiceError::invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_LENGTH} characters (a passphrase of several words works well)"
        )));
    }
    if length > MAX_PASSWORD_LENGTH {
        return Err(ServiceError::invalid(format!(
            "the password is too long: use at most {MAX_PASSWORD_LENGTH} characters"
        )));
    }
    let lowered = password.to_lowercase();
    if !login.is_empty() && lowered.contains(&normalize_login(login)) {
        return Err(ServiceError::invalid(
            "the password must not contain the login ID",
        ));
    }
    let mut chars = lowered.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) || COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        return Err(ServiceError::invalid(
            "this password is too common and easy to guess; choose another",
        ));
    }
    Ok(())
}

/// Argon2id hash of `password`, computed on a blocking thread.
pub async fn hash_password_blocking(password: String) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|err| ServiceError::internal("password hashing task failed", &err))
}

/// Checks `password` against a stored hash, or against a dummy hash when there is none,
/// so both take as long.
pub async fn verify_password_blocking(password: String, phc: Option<String>) -> ServiceResult<bool> {
    tokio::task::spawn_blocking(move || {
        static DUMMY: OnceLock<String> = OnceLock::new();
        match phc {
            Some(phc) => verify_password(&password, &phc),
            None => {
                // Spend the same work as a real check; the answer is no either way.
                let dummy = DUMMY.get_or_init(|| hash_password(&random_hex(16)));
                let _ = verify_password(&password, dummy);
                false
            }
        }
    })
    .await
    .map_err(|err| ServiceError::internal("password check task failed", &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_common_and_login_passwords() {
        assert!(check_password_policy("alice", "correct horse battery").is_ok());
        for bad in [
            "short",
            "Password1234",
            "aaaaaaaaaaaaaaa",
            "my-alice-password",
            "QWERTYUIOP123",
        ] {
            assert!(check_password_policy("alice", bad).is_err(), "{bad}");
        }
        assert!(check_password_policy("alice", &"x".repeat(300)).is_err());
    }

    #[test]
    fn login_ids_are_checked_and_normalised() {
        assert_eq!(normalize_login("  Alice@Example.COM "), "alice@example.com");
        assert!(validate_login("alice@example.com").is_ok());
        for bad in ["al", "-alice", "alice smith", "ålice", &"a".repeat(65)] {
            assert!(validate_login(bad).is_err(), "{bad}");
        }
    }
}
