//! VM records: one JSON file per VM under `vms/`.

use std::collections::BTreeMap;

use lab_common::{check_mac, lab};
use serde::{Deserialize, Serialize};
use tidemark_sdk::{
    AdapterError, AdapterResult, Device, DeviceBacking, Firmware, Hardware, MappedLun, MappingMode,
    Nic, PowerState, VmInfo,
};

/// A snapshot of one virtual disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskSnapshot {
    pub device_id: String,
    pub volume: String,
    pub created_at: u64,
}

/// A snapshot of another VM's disk attached read-only to this VM (how a proxy reads it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub volume: String,
    pub snapshot: String,
}

/// How a device is stored in the record (the contract types carry no serde).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub mount_point: String,
    pub capacity: u64,
    /// Volume id for a virtual disk.
    pub volume: Option<String>,
    /// WWN and mode for a mapped LUN.
    pub wwn: Option<String>,
    pub physical: bool,
}

/// A NIC as the record keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NicRecord {
    pub mac: String,
    pub network: String,
    #[serde(default)]
    pub model: Option<String>,
}

/// The hardware as the record keeps it; what was not given stays unknown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HardwareRecord {
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory: Option<u64>,
    /// `bios` or `uefi`.
    #[serde(default)]
    pub firmware: Option<String>,
    #[serde(default)]
    pub nics: Vec<NicRecord>,
    #[serde(default)]
    pub disk_bus: Option<String>,
    #[serde(default)]
    pub guest_os: Option<String>,
}

impl HardwareRecord {
    /// Checks what a spec asks for and keeps it: `invalid` naming the field otherwise.
    pub fn from_spec(hardware: &Hardware) -> AdapterResult<Self> {
        if hardware.cpus == Some(0) || hardware.cpus.is_some_and(|c| c > 1024) {
            return Err(AdapterError::Invalid(
                "a VM must have 1 to 1024 vCPUs".to_string(),
            ));
        }
        if hardware
            .memory
            .is_some_and(|m| !((1 << 20)..=(16 << 40)).contains(&m))
        {
            return Err(AdapterError::Invalid(
                "a VM's memory must be between 1 MiB and 16 TiB".to_string(),
            ));
        }
        let mut nics = Vec::new();
        for nic in &hardware.nics {
            let mac = nic.mac.to_ascii_lowercase();
            check_mac(&mac)?;
            if nic.network.trim().is_empty() || nic.network.len() > 64 {
                return Err(AdapterError::Invalid(format!(
                    "NIC {mac}: a network name must have 1 to 64 characters"
                )));
            }
            if nics.iter().any(|n: &NicRecord| n.mac == mac) {
                return Err(AdapterError::Invalid(format!("MAC {mac} is given twice")));
            }
            nics.push(NicRecord {
                mac,
                network: nic.network.clone(),
                model: nic.model.clone(),
            });
        }
        Ok(Self {
            cpus: hardware.cpus,
            memory: hardware.memory,
            firmware: hardware.firmware.map(|f| {
                match f {
                    Firmware::Bios => "bios",
                    Firmware::Uefi => "uefi",
                }
                .to_string()
            }),
            nics,
            disk_bus: hardware.disk_bus.clone(),
            guest_os: hardware.guest_os.clone(),
        })
    }

    /// As the contract reports it.
    pub fn hardware(&self) -> Hardware {
        Hardware {
            cpus: self.cpus,
            memory: self.memory,
            firmware: match self.firmware.as_deref() {
                Some("bios") => Some(Firmware::Bios),
                Some("uefi") => Some(Firmware::Uefi),
                _ => None,
            },
            nics: self
                .nics
                .iter()
                .map(|n| Nic {
                    mac: n.mac.clone(),
                    network: n.network.clone(),
                    model: n.model.clone(),
                })
                .collect(),
            disk_bus: self.disk_bus.clone(),
            guest_os: self.guest_os.clone(),
        }
    }
}

/// A VM as the lab keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub powered_on: bool,
    pub device_records: Vec<DeviceRecord>,
    pub next_device: u32,
    pub snapshots: BTreeMap<String, DiskSnapshot>,
    /// Attached snapshots by device id; their volumes belong to other VMs.
    #[serde(default)]
    pub attachments: BTreeMap<String, Attachment>,
    /// The key of the idempotency token that created the VM, saved with it: a crash between
    /// creating and remembering the token cannot make a retry create a second VM.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Devices by the key of the token that added them, saved with the VM for the same reason.
    #[serde(default)]
    pub made_by: BTreeMap<String, String>,
    /// What the VM was created with (contract 0.3.0); unknown for VMs made before.
    #[serde(default)]
    pub hardware: HardwareRecord,
    #[serde(skip)]
    pub devices: Vec<Device>,
    #[serde(skip, default = "off")]
    pub power: PowerState,
}

fn off() -> PowerState {
    PowerState::Off
}

impl VmRecord {
    pub fn new(id: &str, name: &str, host_id: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            host_id: host_id.into(),
            powered_on: false,
            device_records: Vec::new(),
            next_device: 1,
            snapshots: BTreeMap::new(),
            attachments: BTreeMap::new(),
            created_by: None,
            made_by: BTreeMap::new(),
            hardware: HardwareRecord::default(),
            devices: Vec::new(),
            power: PowerState::Off,
        }
    }

    pub fn next_device_id(&mut self) -> String {
        let id = format!("dev-{}", self.next_device);
        self.next_device += 1;
        id
    }

    /// Adds a device; a mount point or WWN used twice is a conflict.
    /// The device a token added earlier, if it is still there.
    pub fn made_by_token(&self, token_key: &str) -> Option<Device> {
        let id = self.made_by.get(token_key)?;
        self.devices.iter().find(|d| &d.id == id).cloned()
    }

    pub fn add_device(&mut self, device: Device) -> AdapterResult<()> {
        if self
            .devices
            .iter()
            .any(|d| d.mount_point == device.mount_point)
        {
            return Err(AdapterError::Conflict(format!(
                "VM {} already has a device at {}",
                self.name, device.mount_point
            )));
        }
        if let DeviceBacking::MappedLun(lun) = &device.backing
            && self
                .devices
                .iter()
                .any(|d| matches!(&d.backing, DeviceBacking::MappedLun(l) if l.wwn == lun.wwn))
        {
            return Err(AdapterError::Conflict(format!(
                "LUN {} is already mapped to VM {}",
                lun.wwn, self.name
            )));
        }
        self.devices.push(device);
        Ok(())
    }

    pub fn device(&self, device_id: &str) -> AdapterResult<&Device> {
        self.devices
            .iter()
            .find(|d| d.id == device_id)
            .ok_or_else(|| {
                AdapterError::NotFound(format!("VM {} has no device {device_id}", self.name))
            })
    }

    pub fn snapshot(&self, snapshot_id: &str) -> AdapterResult<&DiskSnapshot> {
        self.snapshots.get(snapshot_id).ok_or_else(|| {
            AdapterError::NotFound(format!("VM {} has no snapshot {snapshot_id}", self.name))
        })
    }

    pub fn info(&self) -> VmInfo {
        VmInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            host_id: self.host_id.clone(),
            power: self.power,
            devices: self.devices.clone(),
            hardware: self.hardware.hardware(),
        }
    }

    fn prepare_for_disk(&mut self) {
        self.powered_on = self.power == PowerState::On;
        self.device_records = self
            .devices
            .iter()
            .map(|d| {
                let (volume, wwn, physical) = match &d.backing {
                    DeviceBacking::VirtualDisk(v) => (Some(v.clone()), None, false),
                    DeviceBacking::MappedLun(l) => {
                        (None, Some(l.wwn.clone()), l.mode == MappingMode::Physical)
                    }
                };
                DeviceRecord {
                    id: d.id.clone(),
                    mount_point: d.mount_point.clone(),
                    capacity: d.capacity,
                    volume,
                    wwn,
                    physical,
                }
            })
            .collect();
    }

    fn complete_from_disk(&mut self) -> AdapterResult<()> {
        self.power = if self.powered_on {
            PowerState::On
        } else {
            PowerState::Off
        };
        self.devices = self
            .device_records
            .iter()
            .map(|r| {
                let backing = match (&r.volume, &r.wwn) {
                    (Some(v), None) => DeviceBacking::VirtualDisk(v.clone()),
                    (None, Some(w)) => DeviceBacking::MappedLun(MappedLun {
                        wwn: w.clone(),
                        mode: if r.physical {
                            MappingMode::Physical
                        } else {
                            MappingMode::Virtual
                        },
                    }),
                    _ => {
                        return Err(AdapterError::Internal(format!(
                            "VM {}: device {} is corrupt",
                            self.name, r.id
                        )));
                    }
                };
                Ok(Device {
                    id: r.id.clone(),
                    backing,
                    capacity: r.capacity,
                    mount_point: r.mount_point.clone(),
                    shared: false,
                    labels: Vec::new(),
                })
            })
            .collect::<AdapterResult<_>>()?;
        Ok(())
    }
}

fn check_id(vm_id: &str) -> AdapterResult<()> {
    let ok = !vm_id.is_empty()
        && vm_id.len() <= 64
        && vm_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AdapterError::NotFound(format!("no VM with id '{vm_id}'")))
    }
}

pub fn load(vm_id: &str) -> AdapterResult<VmRecord> {
    check_id(vm_id)?;
    let mut record: VmRecord = lab()?
        .load("vms", vm_id)?
        .ok_or_else(|| AdapterError::NotFound(format!("no VM with id '{vm_id}'")))?;
    record.complete_from_disk()?;
    Ok(record)
}

pub fn all() -> AdapterResult<Vec<VmRecord>> {
    let mut records: Vec<VmRecord> = lab()?.load_all("vms")?;
    for record in &mut records {
        record.complete_from_disk()?;
    }
    Ok(records)
}

pub fn save(record: &VmRecord) -> AdapterResult<()> {
    let mut record = record.clone();
    record.prepare_for_disk();
    lab()?.save("vms", &record.id, &record)
}

pub fn remove(vm_id: &str) -> AdapterResult<()> {
    check_id(vm_id)?;
    lab()?.remove("vms", vm_id).map(|_| ())
}

pub fn set_power(vm_id: &str, power: PowerState) -> AdapterResult<()> {
    let mut record = load(vm_id)?;
    if record.power != power {
        record.power = power;
        save(&record)?;
    }
    Ok(())
}
