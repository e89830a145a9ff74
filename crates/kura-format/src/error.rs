use thiserror::Error;

/// Why stored bytes could not be decoded or produced.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The bytes end before the structure does.
    #[error("{what} is truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A magic number does not match: this is not the structure we expected.
    #[error("{what} has a bad magic number")]
    BadMagic { what: &'static str },
    /// A version this build does not know (written by a newer Kura).
    #[error("{what} has format version {version}, this Kura reads up to {supported}")]
    UnsupportedVersion {
        what: &'static str,
        version: u32,
        supported: u32,
    },
    /// Bytes that are internally inconsistent.
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// The content does not hash to the id it is stored under.
    #[error("blob content does not match its id {0}")]
    HashMismatch(String),
    /// Authenticated decryption failed: wrong key or tampered bytes.
    #[error("authentication failed for {what}: wrong key or damaged data")]
    AuthenticationFailed { what: &'static str },
    /// A blob is encrypted but the vault was opened without a key, or the reverse.
    #[error("{0}")]
    KeyMismatch(&'static str),
    /// A passphrase did not open any key slot.
    #[error("the passphrase does not open this vault")]
    WrongPassphrase,
    /// zstd failed.
    #[error("compression error: {0}")]
    Compression(String),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

impl FormatError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Malformed {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn cbor(what: &'static str, err: impl std::fmt::Display) -> Self {
        FormatError::malformed(what, err.to_string())
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> crate::Result<()> {
    getrandom::fill(buf).map_err(|e| FormatError::Random(e.to_string()))
}

/// Takes `n` bytes from the front of `input`, or says what is missing.
pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> crate::Result<&'a [u8]> {
    if input.len() < n {
        return Err(FormatError::Truncated {
            what,
            need: n,
            have: input.len(),
        });
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}
