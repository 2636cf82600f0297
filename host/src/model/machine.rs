//! Physical machines behind a BMC as the engine speaks of them. Every inventory field is an
//! `Option`: what the BMC does not report is unknown, and the planner must treat it so (a
//! Warning, never an invented value).

use serde::{Deserialize, Serialize};

use super::{Firmware, PowerState};

/// A processor as the BMC describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    pub model: Option<String>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
}

/// A network interface of a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineNic {
    pub id: Option<String>,
    /// Lower case, colon separated.
    pub mac: Option<String>,
    pub speed_mbps: Option<u32>,
}

/// A disk of a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDisk {
    pub id: Option<String>,
    /// Bytes.
    pub capacity: Option<u64>,
    pub model: Option<String>,
    pub serial: Option<String>,
}

/// What a BMC reports of one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInventory {
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub cpus: Option<Vec<Cpu>>,
    /// Bytes.
    pub memory: Option<u64>,
    pub nics: Option<Vec<MachineNic>>,
    pub disks: Option<Vec<MachineDisk>>,
    pub power: Option<PowerState>,
    pub firmware: Option<Firmware>,
}

/// Where a machine boots from next (an enum in the API's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BootDevice {
    None,
    Pxe,
    Cd,
    Hdd,
    Usb,
    BiosSetup,
}

impl BootDevice {
    /// Every device, for messages and parsing.
    pub const ALL: [BootDevice; 6] = [
        BootDevice::None,
        BootDevice::Pxe,
        BootDevice::Cd,
        BootDevice::Hdd,
        BootDevice::Usb,
        BootDevice::BiosSetup,
    ];
}

impl std::fmt::Display for BootDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootDevice::None => "none",
            BootDevice::Pxe => "pxe",
            BootDevice::Cd => "cd",
            BootDevice::Hdd => "hdd",
            BootDevice::Usb => "usb",
            BootDevice::BiosSetup => "bios-setup",
        })
    }
}

impl std::str::FromStr for BootDevice {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        BootDevice::ALL
            .into_iter()
            .find(|d| d.to_string() == raw)
            .ok_or_else(|| {
                format!("boot device must be none, pxe, cd, hdd, usb or bios-setup, not '{raw}'")
            })
    }
}
