//! Tenant users' credentials: login IDs, the password policy, sign-in with throttling,
//! lockout, the admin allow-list and the TOTP second factor, and the portal session it
//! opens.
//!
//! Sign-in answers the same for an unknown login ID, a wrong password and a disabled
//! account, takes as long (an unknown ID is checked against a dummy hash), and counts
//! failures by the login ID as typed, so neither the answer nor the lockout reveals
//! whether a login exists. Passwords are hashed off the async runtime.

use std::net::IpAddr;
use std::sync::OnceLock;

use axum::http::StatusCode;

use crate::app::AppState;
use crate::audit::Audit;
use crate::auth::{duration_ms, refuse_inactive_tenant, refuse_outside_admin_networks};
use crate::config::ServerConfig;
use crate::db::{LoginFailures, NewUserSession, TenantRole};
use crate::error::ApiError;
use crate::secrets::{TokenKind, hash_password, new_token, random_hex, token_hash, verify_password};
use crate::tenancy::{TenantId, TenantScope, UserId};
use crate::totp;

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
pub fn validate_login(login: &str) -> Result<(), ApiError> {
    let valid = (3..=64).contains(&login.len())
        && login.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "invalid login ID: use 3 to 64 characters a-z, 0-9, '.', '_', '@' and '-', starting with a letter or digit",
        ))
    }
}

/// The password policy: long enough, not the login ID, not a well-known password.
pub fn check_password_policy(login: &str, password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH {
        return Err(ApiError::invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_LENGTH} characters (a passphrase of several words works well)"
        )));
    }
    if length > MAX_PASSWORD_LENGTH {
        return Err(ApiError::invalid(format!(
            "the password is too long: use at most {MAX_PASSWORD_LENGTH} characters"
        )));
    }
    let lowered = password.to_lowercase();
    if !login.is_empty() && lowered.contains(&normalize_login(login)) {
        return Err(ApiError::invalid("the password must not contain the login ID"));
    }
    let mut chars = lowered.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) || COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        return Err(ApiError::invalid(
            "this password is too common and easy to guess; choose another",
        ));
    }
    Ok(())
}

/// Argon2id hash of `password`, computed on a blocking thread.
pub async fn hash_password_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|err| ApiError::internal("password hashing task failed", &err))
}

/// Checks `password` against a stored hash, or against a dummy hash when there is none,
/// so both take as long.
pub async fn verify_password_blocking(password: String, phc: Option<String>) -> Result<bool, ApiError> {
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
    .map_err(|err| ApiError::internal("password check task failed", &err))
}

/// Whether a sign-in may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    /// Too many recent failures: wait until then.
    Wait {
        until_ms: i64,
    },
    /// Locked (this login ID or this source address) until then.
    Locked {
        until_ms: i64,
    },
}

/// Decides from the recent failures (counted over `login_lockout_period`).
pub fn throttle(config: &ServerConfig, failures: &LoginFailures, now_ms: i64) -> Throttle {
    let period = duration_ms(config.login_lockout_period);
    let locked_until = |count: u32, threshold: u32, last: Option<i64>| {
        last.filter(|_| threshold > 0 && count >= threshold)
            .map(|last| last.saturating_add(period))
            .filter(|until| now_ms < *until)
    };
    let login_lock = locked_until(
        failures.by_login,
        config.login_lockout_after,
        failures.last_by_login_ms,
    );
    let source_lock = locked_until(
        failures.by_source,
        config.login_source_lockout_after,
        failures.last_by_source_ms,
    );
    if let Some(until_ms) = login_lock.max(source_lock) {
        return Throttle::Locked { until_ms };
    }
    if let Some(last) = failures.last_by_login_ms
        && failures.by_login >= config.login_throttle_after
    {
        let doublings = (failures.by_login - config.login_throttle_after).min(20);
        let until_ms = last.saturating_add(1000_i64 << doublings);
        if now_ms < until_ms {
            return Throttle::Wait { until_ms };
        }
    }
    Throttle::Allowed
}

/// A successful sign-in: the cookie and CSRF token are shown once, stored only hashed.
pub struct SignedIn {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub login: String,
    pub role: TenantRole,
    pub session_cookie: String,
    pub csrf_token: String,
    pub expires_ms: i64,
}

/// Checks a sign-in attempt and opens a session. Every outcome is in the event log: the
/// tenant's when the login ID names a user, otherwise the operator work log.
pub async fn sign_in(
    state: &AppState,
    source: Option<IpAddr>,
    request_id: String,
    login: &str,
    password: String,
    totp_code: Option<&str>,
) -> Result<SignedIn, ApiError> {
    let db = state.db.as_ref();
    let now = state.clock.now_ms();
    let login = normalize_login(login);
    let source_text = source.map(|ip| ip.to_string()).unwrap_or_default();
    let audit = Audit {
        actor: login.clone(),
        source,
        request_id,
    };
    let candidate = db.login_candidate(&login).await?;
    // The scope a failure is logged under; the caller has not proved anything yet.
    let scope = candidate
        .as_ref()
        .map(|user| TenantScope::for_authenticated(user.tenant_id.clone()));
    let log = |action: &'static str, result: String| {
        let audit = &audit;
        let scope = scope.as_ref();
        let login = &login;
        async move {
            match scope {
                Some(scope) => audit.tenant(db, scope, now, action, login, &result).await,
                None => audit.operators(db, now, action, login, &result).await,
            }
        }
    };

    let since = now.saturating_sub(duration_ms(state.config.login_lockout_period));
    let failures = db.login_failures(&login, &source_text, since).await?;
    match throttle(&state.config, &failures, now) {
        Throttle::Allowed => {}
        Throttle::Wait { until_ms } => {
            log("login", "refused: throttled".to_owned()).await?;
            let seconds = (until_ms - now).div_euclid(1000) + 1;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed sign-ins; wait {seconds} seconds before trying again"),
            ));
        }
        Throttle::Locked { until_ms } => {
            log("login", "refused: locked".to_owned()).await?;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed sign-ins for this login ID or from this address; try again after {} \
                     or ask your tenant admin to unlock the account",
                    crate::api::types::rfc3339(until_ms)
                ),
            ));
        }
    }

    let stored_hash = candidate
        .as_ref()
        .filter(|user| !user.disabled)
        .map(|user| user.password_hash.clone());
    let password_ok = verify_password_blocking(password, stored_hash).await?;
    let Some(user) = candidate.filter(|_| password_ok) else {
        db.record_login_failure(&login, &source_text, now).await?;
        log("login", "failed".to_owned()).await?;
        let after = LoginFailures {
            by_login: failures.by_login + 1,
            last_by_login_ms: Some(now),
            by_source: failures.by_source + 1,
            last_by_source_ms: Some(now),
        };
        if let Throttle::Locked { until_ms } = throttle(&state.config, &after, now) {
            log(
                "login.lockout",
                format!("locked until {}", crate::api::types::rfc3339(until_ms)),
            )
            .await?;
        }
        return Err(ApiError::unauthorized(
            "sign-in failed: the login ID or password is wrong, or the account is disabled; \
             check them, or use \"forgot password\" or ask your tenant admin",
        ));
    };
    let scope = TenantScope::for_authenticated(user.tenant_id.clone());
    refuse_inactive_tenant(user.tenant_status)?;
    if user.role == TenantRole::Admin {
        refuse_outside_admin_networks(state, &scope, &audit, &user.admin_networks, now).await?;
    }
    if let Some(secret) = &user.totp_secret {
        let Some(code) = totp_code.map(str::trim) else {
            log("login", "refused: TOTP code missing".to_owned()).await?;
            return Err(ApiError::unauthorized(
                "this account uses TOTP: send the current code from your authenticator app (or a recovery code) as \"totp\"",
            ));
        };
        let accepted = if totp::looks_like_recovery_code(code) {
            let hash = token_hash(&code.to_ascii_lowercase());
            db.use_recovery_code(&scope, &user.user_id, &hash, now).await?
        } else {
            match totp::matching_step(secret, code, now, user.totp_last_step) {
                Some(step) => db.use_totp_step(&scope, &user.user_id, step).await?,
                None => false,
            }
        };
        if !accepted {
            db.record_login_failure(&login, &source_text, now).await?;
            log("login", "failed: wrong TOTP code".to_owned()).await?;
            return Err(ApiError::unauthorized(
                "the TOTP code is wrong or was already used; enter the next code your app shows",
            ));
        }
    }
    db.clear_login_failures(&login).await?;
    let session_cookie = new_token(TokenKind::Session);
    let csrf_token = random_hex(32);
    let session = NewUserSession {
        id: random_hex(16),
        user_id: user.user_id.clone(),
        session_hash: token_hash(&session_cookie),
        csrf_hash: token_hash(&csrf_token),
        source: source_text,
    };
    db.create_user_session(&scope, &session, now).await?;
    audit.tenant(db, &scope, now, "login", &login, "ok").await?;
    Ok(SignedIn {
        tenant_id: user.tenant_id,
        user_id: user.user_id,
        login,
        role: user.role,
        session_cookie,
        csrf_token,
        expires_ms: now.saturating_add(duration_ms(state.config.session_absolute_timeout)),
    })
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

    #[test]
    fn failures_throttle_then_lock() {
        let config = ServerConfig::with_data_dir("/nonexistent");
        let failures = |by_login, by_source| LoginFailures {
            by_login,
            last_by_login_ms: Some(1_000_000),
            by_source,
            last_by_source_ms: Some(1_000_000),
        };
        assert_eq!(throttle(&config, &failures(2, 2), 1_000_000), Throttle::Allowed);
        assert_eq!(
            throttle(&config, &failures(3, 3), 1_000_500),
            Throttle::Wait { until_ms: 1_001_000 }
        );
        assert_eq!(throttle(&config, &failures(5, 5), 1_004_000), Throttle::Allowed);
        let locked = Throttle::Locked {
            until_ms: 1_000_000 + 15 * 60_000,
        };
        assert_eq!(throttle(&config, &failures(10, 10), 1_500_000), locked);
        assert_eq!(throttle(&config, &failures(1, 50), 1_500_000), locked);
        assert_eq!(
            throttle(&config, &failures(10, 10), 1_000_000 + 15 * 60_000),
            Throttle::Allowed
        );
    }
}
