//! What kind of adapter an endpoint runs, and how an adapter says a call failed.

use serde::{Deserialize, Serialize};

/// Which world an adapter implements.
/// (The engine names endpoint kinds with it; the runtime decides it from a component's exports.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterKind {
    /// Exports `tidemark:adapter/hypervisor`.
    Hypervisor,
    /// Exports `tidemark:adapter/storage-array`.
    StorageArray,
}

impl std::fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdapterKind::Hypervisor => "hypervisor",
            AdapterKind::StorageArray => "storage-array",
        })
    }
}

/// Why an adapter refused or failed a call. The engine retries only `Transient`; every other
/// kind fails the step at once with the adapter's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdapterError {
    /// The named thing does not exist.
    NotFound(String),
    /// It exists already, or its state forbids the call.
    Conflict(String),
    /// An argument is malformed or out of range.
    Invalid(String),
    /// The adapter, or the system behind it, cannot do this at all.
    Unsupported(String),
    /// Credentials or permissions refused the call.
    Denied(String),
    /// Worth retrying: timeouts, busy systems.
    Transient(String),
    /// A bug or an unexpected state in the adapter or the system behind it.
    Internal(String),
}

impl std::fmt::Display for AdapterError {
    /// As operators read it: `not found: no VM vm-1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, message) = match self {
            AdapterError::NotFound(m) => ("not found", m),
            AdapterError::Conflict(m) => ("conflict", m),
            AdapterError::Invalid(m) => ("invalid", m),
            AdapterError::Unsupported(m) => ("unsupported", m),
            AdapterError::Denied(m) => ("denied", m),
            AdapterError::Transient(m) => ("transient", m),
            AdapterError::Internal(m) => ("internal", m),
        };
        write!(f, "{kind}: {message}")
    }
}
