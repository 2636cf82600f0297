//! The `tidemark:adapter` WIT contract as host-side Rust types and call bindings.
//!
//! Generated from `wit/` so the host and every adapter agree by construction. Only the runtime
//! uses these types; it translates them to the host's own (`crate::model`) in
//! `runtime/translate.rs`, which is what the engine and the catalog speak.

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
