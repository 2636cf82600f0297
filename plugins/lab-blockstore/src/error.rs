//! The one error type of the crate.

/// Every failure of the block store, typed so adapters can map it onto their WIT error
/// variants; the message always names the volume / snapshot / path / offset involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The named volume, snapshot or file does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation clashes with existing state (id taken, token reused, stale writer).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller passed a bad argument (id, size, offset, length).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// On-disk state is unreadable or inconsistent.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The storage backend failed.
    #[error("i/o error: {0}")]
    Io(String),
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
