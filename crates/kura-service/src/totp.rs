//! The TOTP second factor: RFC 6238 codes (HMAC-SHA1, 30-second steps, six digits — what
//! authenticator apps use by default), the `otpauth://` enrolment URI, the tenant policy
//! that makes TOTP mandatory, and single-use recovery codes.
//!
//! Codes are checked one step either side of now (clock drift), and each step is usable
//! once per user (the database remembers the last step used). Time comes from the
//! caller, so tests drive it with the server's clock.

use std::fmt::Write as _;

use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use crate::authz::TenantRole;
use crate::db::DbError;
use crate::secrets::random_hex;

/// Length of one time step.
pub const STEP_MS: i64 = 30_000;
/// How many recovery codes an enrolment yields.
pub const RECOVERY_CODES: usize = 10;

/// Who must use TOTP in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TotpPolicy {
    /// Each user chooses.
    Optional,
    /// Admins must enrol.
    Admins,
    /// Every user must enrol.
    Everyone,
}

impl TotpPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TotpPolicy::Optional => "optional",
            TotpPolicy::Admins => "admins",
            TotpPolicy::Everyone => "everyone",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [TotpPolicy::Optional, TotpPolicy::Admins, TotpPolicy::Everyone]
            .into_iter()
            .find(|policy| policy.as_str() == text)
    }

    /// Whether a user with `role` must have TOTP.
    pub fn requires(self, role: TenantRole) -> bool {
        match self {
            TotpPolicy::Optional => false,
            TotpPolicy::Admins => role == TenantRole::Admin,
            TotpPolicy::Everyone => true,
        }
    }
}

impl std::str::FromStr for TotpPolicy {
    type Err = DbError;

    fn from_str(text: &str) -> Result<Self, DbError> {
        TotpPolicy::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown TOTP policy {text:?}")))
    }
}

/// A new random secret (160 bits, as RFC 4226 recommends), in base32.
pub fn new_secret() -> String {
    let bytes = hex::decode(random_hex(20)).expect("random_hex yields hex");
    BASE32_NOPAD.encode(&bytes)
}

/// The code for the step containing `time_ms`, or `None` for a malformed secret.
pub fn code_at(secret: &str, time_ms: i64) -> Option<String> {
    let key = BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
    Some(code_for_step(&key, time_ms.div_euclid(STEP_MS)))
}

fn code_for_step(key: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    // Dynamic truncation (RFC 4226 §5.3).
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let value = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// The step a six-digit `code` is valid for near `now_ms` (one step either side), if any
/// later than `last_step`.
pub fn matching_step(secret: &str, code: &str, now_ms: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
    let now_step = now_ms.div_euclid(STEP_MS);
    (now_step - 1..=now_step + 1)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| {
            let expected = code_for_step(&key, *step);
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok()
        })
}

/// The URI authenticator apps read (usually from a QR code).
pub fn otpauth_uri(secret: &str, login: &str) -> String {
    let mut label = String::new();
    for byte in format!("Kura:{login}").bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b':') {
            label.push(char::from(byte));
        } else {
            let _ = write!(label, "%{byte:02X}");
        }
    }
    format!("otpauth://totp/{label}?secret={secret}&issuer=Kura&algorithm=SHA1&digits=6&period=30")
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx` in hex (48 bits each, single use, stored hashed).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let hex = random_hex(6);
            format!("{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12])
        })
        .collect()
}

/// Whether `text` has the shape of a recovery code (as opposed to a six-digit code).
pub fn looks_like_recovery_code(text: &str) -> bool {
    let text = text.trim();
    text.len() == 14
        && text
            .split('-')
            .all(|part| part.len() == 4 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the last six digits of the eight-digit values).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = BASE32_NOPAD.encode(b"12345678901234567890");
        for (seconds, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(&secret, seconds * 1000).unwrap(), code, "{seconds}");
        }
    }

    #[test]
    fn codes_match_one_step_either_side_once() {
        let secret = new_secret();
        let now = 1_800_000_000_000;
        let code = code_at(&secret, now).unwrap();
        let step = now / STEP_MS;
        assert_eq!(matching_step(&secret, &code, now + STEP_MS, None), Some(step));
        assert_eq!(matching_step(&secret, &code, now + 2 * STEP_MS, None), None);
        assert_eq!(matching_step(&secret, &code, now, Some(step)), None, "used once");
        assert_eq!(matching_step(&secret, "12345", now, None), None);
    }

    #[test]
    fn recovery_codes_and_uris_have_their_shape() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| looks_like_recovery_code(c)));
        assert!(!looks_like_recovery_code("123456"));
        let uri = otpauth_uri("ABC", "alice@example.com");
        assert!(uri.starts_with("otpauth://totp/Kura:alice%40example.com?secret=ABC&issuer=Kura"));
        assert!(TotpPolicy::Admins.requires(TenantRole::Admin));
        assert!(!TotpPolicy::Admins.requires(TenantRole::Auditor));
    }
}
