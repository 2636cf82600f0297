//! What the ports say about hosts, VMs, LUNs and snapshots: the host's own records, which the
//! runtime fills from each contract version's bindings (the same shapes as contract 0.2.0, so
//! step outputs recorded in the journal read the same).

use serde::{Deserialize, Serialize};

use super::MappingMode;

/// Whether a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    On,
    Off,
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// A LUN mapped into a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLun {
    /// NAA identifier, `naa.` and hex digits.
    pub wwn: String,
    pub mode: MappingMode,
}

/// What backs a device of a VM, as a hypervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceBacking {
    /// A virtual disk; the payload is the hypervisor's disk id.
    VirtualDisk(String),
    /// An array LUN mapped into the VM.
    MappedLun(MappedLun),
}

/// One disk as a VM sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDevice {
    /// Stable id within its VM.
    pub id: String,
    pub backing: DeviceBacking,
    /// Bytes.
    pub capacity: u64,
    /// `C:` or `/data`.
    pub mount_point: String,
}

/// A hypervisor host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub id: String,
    pub name: String,
}

/// A VM with every device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub power: PowerState,
    pub devices: Vec<VmDevice>,
}

/// A new, empty virtual disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDisk {
    pub capacity: u64,
    pub mount_point: String,
}

/// A LUN to map into a VM (already exposed to its host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunMapping {
    pub lun: MappedLun,
    pub capacity: u64,
    pub mount_point: String,
}

/// What to put into a new VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceSpec {
    NewVirtualDisk(NewDisk),
    MapLun(LunMapping),
}

/// A VM to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub name: String,
    pub host_id: String,
    pub devices: Vec<DeviceSpec>,
}

/// A point-in-time snapshot an endpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Unique within the endpoint's system.
    pub id: String,
    /// What was snapshotted: a virtual disk id or a LUN WWN.
    pub source: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// A LUN on an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunInfo {
    pub wwn: String,
    pub name: String,
    pub capacity: u64,
    /// Hypervisor host ids the LUN is exposed to.
    pub exposed_to: Vec<String>,
}

/// A byte range of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}
