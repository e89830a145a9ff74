use std::path::PathBuf;

use thiserror::Error;

/// What went wrong on the agent side.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] kura_store::StoreError),
    #[error(transparent)]
    Format(#[from] kura_format::FormatError),
    /// A file system operation on the client failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// The vault holds something that must not be restored (hostile or damaged).
    #[error("refusing to restore: {0}")]
    Unsafe(String),
    /// The passphrase opens no key slot.
    #[error("wrong passphrase: it opens none of this vault's key slots")]
    WrongPassphrase,
    /// A path inside a snapshot does not exist.
    #[error("{0:?} is not in this snapshot")]
    NotInSnapshot(String),
    /// The server answered with an error; its message says what to do.
    #[error("server refused ({status}): {message}")]
    Server { status: u16, message: String },
    /// The server could not be reached or spoke nonsense.
    #[error("cannot talk to the server: {0}")]
    Connection(String),
    /// The partition table or file system inside an image snapshot cannot be read.
    #[error(transparent)]
    Image(#[from] kura_image::ImageError),
    /// A pre- or post-backup hook failed.
    #[error("{0}")]
    Hook(String),
    /// Another stage of a pipeline failed first.
    #[error("aborted: {0}")]
    Aborted(String),
}

impl AgentError {
    /// Whether the server refused the request for good (4xx): sending it again would be
    /// refused again.
    pub fn is_refusal(&self) -> bool {
        matches!(self, AgentError::Server { status, .. } if (400..500).contains(status))
    }

    /// Whether this is stored data that cannot be read back — damaged, missing, or refused
    /// by the server — so work can go on around it: one lost chunk must not cost the rest
    /// of a restore.
    pub fn is_damage(&self) -> bool {
        use kura_store::StoreError as S;
        match self {
            AgentError::Store(S::Database(_) | S::NoSpace(_)) => false,
            AgentError::Store(_) | AgentError::Format(_) | AgentError::Server { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }
}
