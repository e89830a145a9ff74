//! Operator accounts (provider staff), their sessions and API tokens.

use std::fmt;

use crate::authz::ProviderRole;
use crate::ids::OperatorId;
use crate::model::Language;

/// An operator account as listed (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: OperatorId,
    pub login: String,
    pub role: ProviderRole,
    pub email: Option<String>,
    /// The language of the mail the account receives.
    pub language: Language,
    pub totp_enrolled: bool,
    pub password_changed: bool,
    pub created_ms: i64,
    pub disabled_ms: Option<i64>,
}

/// What an operator's sign-in is checked against, found by the login ID.
#[derive(Clone)]
pub struct OperatorCandidate {
    pub id: OperatorId,
    pub login: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: ProviderRole,
    pub disabled: bool,
    /// Whether the operator has replaced the one-time password of the account's creation.
    pub password_changed: bool,
    /// The active TOTP secret, sealed with the service key, once enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
}

impl fmt::Debug for OperatorCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorCandidate")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The operator session a cookie names, with its owner's state.
#[derive(Debug, Clone)]
pub struct OperatorSessionIdentity {
    pub session_id: String,
    pub operator_id: OperatorId,
    pub login: String,
    pub role: ProviderRole,
    pub csrf_hash: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub revoked: bool,
    pub disabled: bool,
    pub totp_enrolled: bool,
    pub password_changed: bool,
}

/// An operator's session as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSessionRecord {
    pub id: String,
    pub source: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

/// An operator API token as stored (without the hash), with its owner if it has one
/// (the tokens of a fresh service belong to no account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTokenRecord {
    pub id: String,
    /// Who or what the token was issued to.
    pub name: String,
    pub role: ProviderRole,
    pub operator_id: Option<OperatorId>,
    /// The owner's login ID.
    pub owner_login: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// A token's identity at authentication: the token and the state of its owner.
#[derive(Debug, Clone)]
pub struct OperatorTokenIdentity {
    pub token: OperatorTokenRecord,
    pub owner_role: Option<ProviderRole>,
    pub owner_disabled: bool,
}
