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
    /// The file system holding the vault (or its catalog) is full.
    #[error(
        "no space left on the vault's file system ({0}); free some space there (`kura gc` needs a little too), then run the command again"
    )]
    NoSpace(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_out_of_space(&e) {
            StoreError::NoSpace(format!("catalog database: {e}"))
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

/// SQLite's `SQLITE_FULL` (13, with any extended code) and `SQLITE_IOERR_SHMSIZE` (4874:
/// the shared-memory file of WAL mode could not grow), PostgreSQL's `disk_full` (53100),
/// and the OS's `ENOSPC`. SQLite reports most other failures on a full disk as a vague
/// "disk I/O error"; [`crate::Vault::open_local`] looks at the free space itself.
fn is_out_of_space(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("53100") | Some("4874") => true,
            Some(code) => code.parse::<i64>().is_ok_and(|c| c & 0xff == 13),
            None => false,
        },
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        // Object store errors hide the OS error deep in their source chain; surface it
        // ("No space left on device") so the user sees the cause.
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                let msg = format!("{e}: {io}");
                return if io.kind() == std::io::ErrorKind::StorageFull {
                    StoreError::NoSpace(msg)
                } else {
                    StoreError::Storage(msg)
                };
            }
            source = s.source();
        }
        StoreError::Storage(e.to_string())
    }
}
