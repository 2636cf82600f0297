//! What the host offers an adapter: endpoint settings and secrets, logging, the clock.

use crate::AdapterError;
use crate::bindings::host_imports::{self, LogLevel};

/// A setting of this endpoint, as given by `tidemark endpoint add --setting key=value`.
pub fn setting(key: &str) -> Option<String> {
    host_imports::setting(key)
}

/// A secret of this endpoint (`tidemark endpoint add --secret NAME=…`), read when needed
/// and never logged; `None` when the endpoint has none of that name.
pub fn secret(name: &str) -> Option<String> {
    host_imports::secret(name)
}

/// A setting, or `default` when the endpoint does not set it.
pub fn setting_or(key: &str, default: &str) -> String {
    setting(key).unwrap_or_else(|| default.to_string())
}

/// A setting the adapter cannot work without: `invalid` naming the key when it is missing.
pub fn required_setting(key: &str) -> Result<String, AdapterError> {
    setting(key)
        .ok_or_else(|| AdapterError::Invalid(format!("endpoint setting '{key}' is required")))
}

/// A setting parsed as `T`, `default` when absent, `invalid` naming the key when malformed.
pub fn setting_parse<T: std::str::FromStr>(key: &str, default: T) -> Result<T, AdapterError> {
    match setting(key) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| {
            AdapterError::Invalid(format!(
                "endpoint setting '{key}' has a malformed value '{raw}'"
            ))
        }),
    }
}

/// Milliseconds since the Unix epoch, from the WASI clock the host grants.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Logging into the host's tracing, tagged with the endpoint.
pub mod log {
    use super::{LogLevel, host_imports};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        host_imports::log(LogLevel::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        host_imports::log(LogLevel::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        host_imports::log(LogLevel::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        host_imports::log(LogLevel::Error, message);
    }
}
