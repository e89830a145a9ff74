use thiserror::Error;

/// What went wrong in the vault.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No vault at the given location.
    #[error("no vault at {0} — run `kura init` to create one")]
    NoVault(String),
    /// A vault already exists where one was to be created.
    #[error("a vault already exists at {0}")]
    AlreadyExists(String),
    /// Stored bytes could not be decoded.
    #[error(transparent)]
    Format(#[from] kura_format::FormatError),
    /// An uploaded pack or manifest is not acceptable.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A snapshot id or prefix matches nothing.
    #[error("no snapshot matches {0:?}")]
    UnknownSnapshot(String),
    /// A snapshot prefix matches more than one snapshot.
    #[error("snapshot prefix {0:?} is ambiguous: give more digits")]
    AmbiguousSnapshot(String),
    /// A chunk the caller asked for is not in the vault.
    #[error("chunk {0} is not in the vault")]
    MissingChunk(String),
    /// The upload session is unknown or already committed.
    #[error("upload session {0} is unknown, expired or already committed")]
    UnknownSession(String),
    /// The object storage failed (includes a full disk).
    #[error("storage: {0}")]
    Storage(String),
    /// The catalog database failed.
    #[error("catalog database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        StoreError::Storage(storage_message(&e))
    }
}

/// Object store errors hide the OS error deep in their source chain; surface it
/// ("No space left on device") so the user sees the cause.
fn storage_message(e: &object_store::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            msg = format!("{msg}: {io}");
            break;
        }
        source = s.source();
    }
    msg
}
