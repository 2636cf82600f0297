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
    /// Exports `tidemark:adapter/cloud` (contract 0.3.0 on).
    Cloud,
    /// Exports `tidemark:adapter/dns` (contract 0.3.0 on).
    Dns,
    /// Exports `tidemark:adapter/machine` (contract 0.3.0 on).
    Machine,
}

impl AdapterKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [AdapterKind; 5] = [
        AdapterKind::Hypervisor,
        AdapterKind::StorageArray,
        AdapterKind::Cloud,
        AdapterKind::Dns,
        AdapterKind::Machine,
    ];

    /// The contract interface an adapter of this kind exports.
    pub fn interface(self) -> &'static str {
        match self {
            AdapterKind::Hypervisor => "hypervisor",
            AdapterKind::StorageArray => "storage-array",
            AdapterKind::Cloud => "cloud",
            AdapterKind::Dns => "dns",
            AdapterKind::Machine => "machine",
        }
    }
}

impl std::fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.interface())
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

/// A loaded adapter as operators see it (`GET /v1/adapters`, `tidemark adapter list`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterSummary {
    /// The name endpoints refer to.
    pub name: String,
    /// Where it came from: `embedded` or its file.
    pub source: String,
    /// The world it implements.
    pub kind: AdapterKind,
    /// The contract version it was built against.
    pub contract: String,
    /// What the adapter says of itself.
    pub vendor: String,
    /// The adapter's own version.
    pub version: String,
    /// Optional calls it implements.
    pub capabilities: Vec<String>,
    /// SHA-256 of its `.wasm`: which build this is.
    pub sha256: String,
    /// What it asks to reach outside its sandbox (from its manifest), e.g. `tcp=*:10809`.
    pub requested: super::capabilities::Requested,
}

/// An adapter file that was found but not loaded, and why: shown beside the loaded ones so
/// an operator sees at once why an adapter is missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedAdapter {
    /// The name it would have had.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

/// Totals of adapter calls of one endpoint and one call, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Time spent in them.
    pub seconds: f64,
}

/// Who an adapter says it is (its `info` answer), in any contract version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AdapterInfo {
    /// The contract version it was built against.
    pub contract: String,
    pub vendor: String,
    /// The adapter's own version.
    pub version: String,
    /// Optional calls it implements.
    pub capabilities: Vec<String>,
}
