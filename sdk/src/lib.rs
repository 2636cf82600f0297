//! Write a Tidemark adapter in Rust.
//!
//! An adapter is a WebAssembly component that lets the Tidemark host reach one kind of system
//! (a hypervisor, a storage array, a DNS service, a BMC). Implement `Hypervisor`,
//! `StorageArray`, `Dns` or `Machine` for a type (the SDK feature of the same name picks the
//! world) and call its export macro (`export_hypervisor!`, `export_storage_array!`,
//! `export_dns!`, `export_machine!`) once; build the crate as a
//! `cdylib` for `wasm32-wasip2`. The SDK fills in the contract version, turns readers and
//! writers into the contract's resources, and gives helpers for errors, settings and logs.
//!
//! ```ignore
//! struct MyHypervisor;
//! impl tidemark_sdk::Hypervisor for MyHypervisor { /* ... */ }
//! tidemark_sdk::export_hypervisor!(MyHypervisor);
//! ```

extern crate self as tidemark_sdk;

mod bindings;
#[cfg(any(feature = "hypervisor", feature = "storage-array"))]
mod data_path;
#[cfg(feature = "dns")]
mod dns;
mod errors;
mod host;
pub mod http;
#[cfg(feature = "hypervisor")]
mod hypervisor;
#[cfg(feature = "machine")]
mod machine;
pub mod net;
pub mod records;
#[cfg(feature = "storage-array")]
mod storage_array;

pub use bindings::types::*;
#[cfg(any(feature = "hypervisor", feature = "storage-array"))]
pub use data_path::{DeviceRead, DeviceWrite};
#[cfg(feature = "dns")]
pub use dns::{Dns, DnsExports, DnsRecord, RecordKind};
pub use errors::{AdapterResult, OrInternal, scrubbed};
pub use host::{log, now_ms, required_setting, secret, setting, setting_or, setting_parse};
#[cfg(feature = "hypervisor")]
pub use hypervisor::{ConsoleOutput, Hypervisor, HypervisorExports, NetworkInfo};
#[cfg(feature = "machine")]
pub use machine::{BootDevice, Cpu, Inventory, Machine, MachineDisk, MachineExports, MachineNic};
#[cfg(feature = "storage-array")]
pub use storage_array::{StorageArray, StorageArrayExports};

/// The contract version this SDK is built against; the host checks it at load.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Fills in the contract version the adapter was built against.
pub(crate) fn adapter_info(about: About) -> AdapterInfo {
    AdapterInfo {
        contract: CONTRACT_VERSION.to_string(),
        vendor: about.vendor,
        version: about.version,
        capabilities: about.capabilities,
    }
}

/// Who an adapter is: the SDK adds the contract version to make the contract's `adapter-info`.
#[derive(Debug, Clone)]
pub struct About {
    /// Who wrote the adapter, e.g. "Tidemark lab".
    pub vendor: String,
    /// The adapter's own version.
    pub version: String,
    /// Capability names the host may look for.
    pub capabilities: Vec<String>,
}

/// Declares what the adapter needs outside its sandbox, as JSON carried in the `.wasm`'s
/// `tidemark:manifest` custom section: the host reads it before running anything, and the
/// operator's grants give the adapter only what it declared here.
///
/// ```ignore
/// tidemark_sdk::manifest!(r#"{"tcp": ["*:*"], "http": ["*"], "data-dir": true, "secrets": ["password"]}"#);
/// ```
///
/// Keys (all optional): `http` and `tcp`, destinations as `HOST[:PORT]` where `*` leaves the
/// host or port to the operator's grants; `data-dir`, a private directory at `/data`;
/// `secrets`, the names `secret()` will ask for. Without a manifest an adapter gets its data
/// directory only.
#[macro_export]
macro_rules! manifest {
    ($json:literal) => {
        const _: () = {
            #[unsafe(link_section = "tidemark:manifest")]
            #[used]
            static TIDEMARK_MANIFEST: [u8; $json.len()] = {
                let text = $json.as_bytes();
                let mut out = [0u8; $json.len()];
                let mut i = 0;
                while i < text.len() {
                    out[i] = text[i];
                    i += 1;
                }
                out
            };
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::world;
    pub use wit_bindgen;
}

/// Exports `$t` (which implements `Hypervisor`) as this component's hypervisor adapter.
#[cfg(feature = "hypervisor")]
#[macro_export]
macro_rules! export_hypervisor {
    ($t:ty) => {
        const _: () = {
            type TidemarkHypervisorExports = $crate::HypervisorExports<$t>;
            $crate::__private::world::__export_adapter_world!(
                TidemarkHypervisorExports with_types_in $crate::__private::world
            );
        };
    };
}

/// Exports `$t` (which implements `StorageArray`) as this component's storage-array adapter.
#[cfg(feature = "storage-array")]
#[macro_export]
macro_rules! export_storage_array {
    ($t:ty) => {
        const _: () = {
            type TidemarkStorageArrayExports = $crate::StorageArrayExports<$t>;
            $crate::__private::world::__export_adapter_world!(
                TidemarkStorageArrayExports with_types_in $crate::__private::world
            );
        };
    };
}

/// Exports `$t` (which implements `Dns`) as this component's DNS adapter.
#[cfg(feature = "dns")]
#[macro_export]
macro_rules! export_dns {
    ($t:ty) => {
        const _: () = {
            type TidemarkDnsExports = $crate::DnsExports<$t>;
            $crate::__private::world::__export_adapter_world!(
                TidemarkDnsExports with_types_in $crate::__private::world
            );
        };
    };
}

/// Exports `$t` (which implements `Machine`) as this component's machine (BMC) adapter.
#[cfg(feature = "machine")]
#[macro_export]
macro_rules! export_machine {
    ($t:ty) => {
        const _: () = {
            type TidemarkMachineExports = $crate::MachineExports<$t>;
            $crate::__private::world::__export_adapter_world!(
                TidemarkMachineExports with_types_in $crate::__private::world
            );
        };
    };
}
