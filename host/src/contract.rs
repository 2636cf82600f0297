//! The `tidemark:adapter` WIT contract as host-side Rust types and call bindings.
//!
//! Generated from `wit/` so the host and every adapter agree by construction; the engine
//! speaks these types too, so there is one model of VMs, devices and snapshots.

wasmtime::component::bindgen!({
    world: "host-view",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq, Eq],
});

pub use exports::tidemark::adapter::{adapter, data_path, hypervisor, storage_array};
pub use tidemark::adapter::host as host_imports;
pub use tidemark::adapter::types::*;

/// The contract version this host speaks; adapters of another minor version are refused.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Whether an adapter built for `version` can run on this host (same major.minor for 0.x).
pub fn contract_compatible(version: &str) -> bool {
    let minor = |v: &str| {
        let mut parts = v.split('.');
        (
            parts.next().map(str::to_string),
            parts.next().map(str::to_string),
        )
    };
    let (ours, theirs) = (minor(CONTRACT_VERSION), minor(version));
    ours.0.is_some() && ours == theirs && version.split('.').count() == 3
}

/// An adapter error as operators read it: `not found: no VM vm-1`.
pub fn describe_adapter_error(error: &AdapterError) -> String {
    {
        let (kind, message) = match error {
            AdapterError::NotFound(m) => ("not found", m),
            AdapterError::Conflict(m) => ("conflict", m),
            AdapterError::Invalid(m) => ("invalid", m),
            AdapterError::Unsupported(m) => ("unsupported", m),
            AdapterError::Denied(m) => ("denied", m),
            AdapterError::Transient(m) => ("transient", m),
            AdapterError::Internal(m) => ("internal", m),
        };
        format!("{kind}: {message}")
    }
}

impl std::fmt::Display for MappingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MappingMode::Physical => "physical",
            MappingMode::Virtual => "virtual",
        })
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contract_compatible;

    #[test]
    fn same_minor_is_compatible_and_others_are_not() {
        assert!(contract_compatible("0.2.0"));
        assert!(contract_compatible("0.2.7"));
        assert!(!contract_compatible("0.1.0"));
        assert!(!contract_compatible("1.1.0"));
        assert!(!contract_compatible("0.1"));
        assert!(!contract_compatible("garbage"));
    }
}
