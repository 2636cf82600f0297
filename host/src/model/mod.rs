//! Host-owned words for what the engine and the catalog talk about, independent of any
//! contract version: the runtime translates each version's bindings to these
//! (`runtime/translate.rs`), so the engine and the catalog never depend on what one WIT
//! release happened to generate.

mod adapter;
pub mod capabilities;
mod device;
mod dns;
mod machine;
mod vm;

pub use adapter::{
    AdapterError, AdapterInfo, AdapterKind, AdapterSummary, CallStats, RejectedAdapter,
};
pub use device::{Device, MappingMode};
pub use dns::{DnsRecord, RecordKind, fqdn};
pub use machine::{BootDevice, Cpu, MachineDisk, MachineInventory, MachineNic};
pub use vm::{
    ConsoleOutput, DeviceBacking, DeviceSpec, Extent, Firmware, Hardware, HostInfo, LunInfo,
    LunMapping, MappedLun, NetworkInfo, NewDisk, Nic, PowerState, SnapshotRef, VmDevice, VmInfo,
    VmSpec,
};
