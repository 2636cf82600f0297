//! What the ports say about hosts, VMs, LUNs and snapshots: the host's own records, which the
//! runtime fills from each contract version's bindings. Fields a later contract added
//! (hardware, host capacity, shared devices, labels) default when absent, so step outputs
//! recorded in the journal by an older host, or answered by a 0.2.0 adapter, read the same.

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
    /// Other VMs use it at once (a shared cluster disk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Labels the system keeps on the device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

/// A hypervisor host. Capacity figures are `None` when the system does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub id: String,
    pub name: String,
    /// Logical CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Bytes free for new virtual disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_capacity: Option<u64>,
}

/// How a machine starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            other => Err(format!("firmware must be bios or uefi, not '{other}'")),
        }
    }
}

/// A network interface of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Lower case, colon separated.
    pub mac: String,
    /// The network it is connected to.
    pub network: String,
    /// The emulated model, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A VM's hardware: what a restore or migration must reproduce. `None` is unknown (a 0.2.0
/// adapter, or a system that does not say), never a guess.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<Nic>,
    /// The disk bus the guest sees (`virtio`, `scsi`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bus: Option<String>,
    /// A guest OS hint the system keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_os: Option<String>,
}

/// A VM with every device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub power: PowerState,
    pub devices: Vec<VmDevice>,
    #[serde(default)]
    pub hardware: Hardware,
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
    /// What is unknown takes the system's defaults.
    #[serde(default)]
    pub hardware: Hardware,
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

/// Console bytes of a VM and the offset to read on from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    pub data: Vec<u8>,
    pub next: u64,
}

/// A network on a hypervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub isolated: bool,
}
