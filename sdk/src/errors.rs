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

/// `error` with every occurrence of each of `secrets` replaced by `<secret>`: whatever a
/// server or a proxy echoes back, no message an adapter returns carries a credential.
pub fn scrubbed(error: AdapterError, secrets: &[&str]) -> AdapterError {
    let clean = |mut message: String| {
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret, "<secret>");
        }
        message
    };
    match error {
        AdapterError::NotFound(m) => AdapterError::NotFound(clean(m)),
        AdapterError::Conflict(m) => AdapterError::Conflict(clean(m)),
        AdapterError::Invalid(m) => AdapterError::Invalid(clean(m)),
        AdapterError::Unsupported(m) => AdapterError::Unsupported(clean(m)),
        AdapterError::Denied(m) => AdapterError::Denied(clean(m)),
        AdapterError::Transient(m) => AdapterError::Transient(clean(m)),
        AdapterError::Internal(m) => AdapterError::Internal(clean(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let e = scrubbed(
            AdapterError::Denied("key AKID7 secret s3cr3t refused".into()),
            &["AKID7", "s3cr3t", ""],
        );
        assert!(
            matches!(e, AdapterError::Denied(m) if m == "key <secret> secret <secret> refused")
        );
    }
}
