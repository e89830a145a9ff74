//! [`ServiceError`]: what went wrong in a service operation, as a kind the edge maps to
//! its own terms (an HTTP status, an HTML page, an exit code) and a message written for
//! the person reading it, saying what to do next. Messages never carry secrets; failures
//! on our side are logged here and reach the caller only as "internal".

use std::fmt;

/// Whose fault an error is, and what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named thing does not exist (or is another tenant's, which looks the same).
    NotFound,
    /// The request clashes with the current state (a taken name, the last admin).
    Conflict,
    /// A value is not acceptable.
    Invalid,
    /// The caller is known but may not do this.
    Forbidden,
    /// The caller's credential is missing, wrong, expired or revoked.
    Unauthenticated,
    /// Too many attempts; try again later.
    Throttled,
    /// A part the operation needs is not there (mail not configured, storage full).
    Unavailable,
    /// The tenant's storage quota or the service's storage is exhausted.
    StorageFull,
    /// A failure on our side; details are in the log.
    Internal,
}

/// A refusal a person meets in a browser, named so that a front end can say it in the
/// person's language (the message stays the English text for the API and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown login ID, wrong password or disabled account (never told apart).
    WrongCredentials,
    /// The second factor was wrong or already used.
    WrongSecondFactor,
    /// The sign-in's first step is too old or not this service's: start again.
    SignInExpired,
    /// Too many failures: wait until then.
    Throttled { until_ms: i64 },
    /// Locked (this login ID or this address) until then.
    Locked { until_ms: i64 },
    /// An admin outside the tenant's admin networks, from this address.
    OutsideAdminNetworks { address: String },
    /// The tenant is suspended.
    TenantSuspended,
    /// The tenant's contract has ended.
    TenantTerminated,
    /// The session has ended (signed out, expired or revoked).
    SessionEnded,
    /// The form's CSRF token is missing or not this session's.
    FormExpired,
    /// The tenant requires TOTP for the user's role and the user has not enrolled yet.
    TotpEnrolmentRequired,
    /// An operator from outside the management networks, from this address.
    OutsideOperatorNetworks { address: String },
    /// An operator's first sign-in is not finished: set a password and enrol TOTP.
    OperatorSetupRequired,
}

/// An error of a service operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    /// What the refusal is, where a person in a browser may meet it.
    pub refusal: Option<Refusal>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
            refusal: None,
        }
    }

    /// Names the refusal, for front ends that translate it.
    pub fn because(mut self, refusal: Refusal) -> Self {
        self.refusal = Some(refusal);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Throttled, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn storage_full(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::StorageFull, message)
    }

    /// A failure on our side: the details go to the log, the caller gets a pointer to it.
    pub fn internal(context: &str, err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            ErrorKind::Internal,
            "internal server error; the operator can find details in the log",
        )
    }
}

impl From<crate::db::DbError> for ServiceError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::Conflict(message) => ServiceError::conflict(message),
            DbError::OutOfRange(what) => ServiceError::invalid(format!("{what} is too large")),
            other => ServiceError::internal("database error", &other),
        }
    }
}
