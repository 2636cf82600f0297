//! Error helpers: every adapter call returns `Result<_, AdapterError>`.

use crate::AdapterError;

/// The result of every adapter call.
pub type AdapterResult<T> = Result<T, AdapterError>;

/// Turns any displayable error into `AdapterError::Internal` with context, so adapters can use
/// `?` on their own errors without losing what went wrong.
pub trait OrInternal<T> {
    /// Maps the error to `internal("{context}: {error}")`.
    fn or_internal(self, context: &str) -> AdapterResult<T>;
}

impl<T, E: std::fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self, context: &str) -> AdapterResult<T> {
        self.map_err(|e| AdapterError::Internal(format!("{context}: {e}")))
    }
}
