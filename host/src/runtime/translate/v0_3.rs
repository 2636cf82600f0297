//! Contract 0.3.0 ↔ the host's types: hardware, host capacity, shared devices and labels,
//! DNS records and machine inventory.

super::same_shape!(v0_3);

impl IntoHost for wit::Device {
    type Host = model::VmDevice;
    fn into_host(self) -> model::VmDevice {
        model::VmDevice {
            id: self.id,
            backing: self.backing.into_host(),
            capacity: self.capacity,
            mount_point: self.mount_point,
            shared: self.shared,
            labels: self.labels,
        }
    }
}

impl IntoHost for wit::Firmware {
    type Host = model::Firmware;
    fn into_host(self) -> model::Firmware {
        match self {
            wit::Firmware::Bios => model::Firmware::Bios,
            wit::Firmware::Uefi => model::Firmware::Uefi,
        }
    }
}

impl IntoHost for wit::Nic {
    type Host = model::Nic;
    fn into_host(self) -> model::Nic {
        model::Nic {
            mac: self.mac,
            network: self.network,
            model: self.model,
        }
    }
}

impl IntoHost for wit::Hardware {
    type Host = model::Hardware;
    fn into_host(self) -> model::Hardware {
        model::Hardware {
            cpus: self.cpus,
            memory: self.memory,
            firmware: self.firmware.into_host(),
            nics: self.nics.into_host(),
            disk_bus: self.disk_bus,
            guest_os: self.guest_os,
        }
    }
}

impl IntoHost for wit::VmInfo {
    type Host = model::VmInfo;
    fn into_host(self) -> model::VmInfo {
        model::VmInfo {
            id: self.id,
            name: self.name,
            host_id: self.host_id,
            power: self.power.into_host(),
            devices: self.devices.into_host(),
            hardware: self.hardware.into_host(),
        }
    }
}

impl IntoHost for wit::HostInfo {
    type Host = model::HostInfo;
    fn into_host(self) -> model::HostInfo {
        model::HostInfo {
            id: self.id,
            name: self.name,
            cpus: self.cpus,
            memory: self.memory,
            free_capacity: self.free_capacity,
        }
    }
}

impl FromHost<model::Hardware> for wit::Hardware {
    fn from_host(hardware: &model::Hardware) -> Self {
        wit::Hardware {
            cpus: hardware.cpus,
            memory: hardware.memory,
            firmware: hardware.firmware.map(|f| match f {
                model::Firmware::Bios => wit::Firmware::Bios,
                model::Firmware::Uefi => wit::Firmware::Uefi,
            }),
            nics: hardware
                .nics
                .iter()
                .map(|nic| wit::Nic {
                    mac: nic.mac.clone(),
                    network: nic.network.clone(),
                    model: nic.model.clone(),
                })
                .collect(),
            disk_bus: hardware.disk_bus.clone(),
            guest_os: hardware.guest_os.clone(),
        }
    }
}

impl FromHost<model::VmSpec> for wit::VmSpec {
    fn from_host(spec: &model::VmSpec) -> Self {
        wit::VmSpec {
            name: spec.name.clone(),
            host_id: spec.host_id.clone(),
            devices: spec.devices.iter().map(FromHost::from_host).collect(),
            hardware: FromHost::from_host(&spec.hardware),
        }
    }
}

impl IntoHost for wit::hypervisor::ConsoleOutput {
    type Host = model::ConsoleOutput;
    fn into_host(self) -> model::ConsoleOutput {
        model::ConsoleOutput {
            data: self.data,
            next: self.next,
        }
    }
}

impl IntoHost for wit::hypervisor::NetworkInfo {
    type Host = model::NetworkInfo;
    fn into_host(self) -> model::NetworkInfo {
        model::NetworkInfo {
            id: self.id,
            name: self.name,
            isolated: self.isolated,
        }
    }
}

impl IntoHost for wit::dns::RecordKind {
    type Host = model::RecordKind;
    fn into_host(self) -> model::RecordKind {
        match self {
            wit::dns::RecordKind::A => model::RecordKind::A,
            wit::dns::RecordKind::Aaaa => model::RecordKind::Aaaa,
            wit::dns::RecordKind::Cname => model::RecordKind::Cname,
        }
    }
}

impl FromHost<model::RecordKind> for wit::dns::RecordKind {
    fn from_host(kind: &model::RecordKind) -> Self {
        match kind {
            model::RecordKind::A => wit::dns::RecordKind::A,
            model::RecordKind::Aaaa => wit::dns::RecordKind::Aaaa,
            model::RecordKind::Cname => wit::dns::RecordKind::Cname,
        }
    }
}

impl IntoHost for wit::dns::DnsRecord {
    type Host = model::DnsRecord;
    fn into_host(self) -> model::DnsRecord {
        model::DnsRecord {
            name: self.name,
            kind: self.kind.into_host(),
            values: self.values,
            ttl: self.ttl,
        }
    }
}

impl FromHost<model::DnsRecord> for wit::dns::DnsRecord {
    fn from_host(record: &model::DnsRecord) -> Self {
        wit::dns::DnsRecord {
            name: record.name.clone(),
            kind: FromHost::from_host(&record.kind),
            values: record.values.clone(),
            ttl: record.ttl,
        }
    }
}

impl FromHost<model::BootDevice> for wit::machine::BootDevice {
    fn from_host(device: &model::BootDevice) -> Self {
        use wit::machine::BootDevice as W;
        match device {
            model::BootDevice::None => W::None,
            model::BootDevice::Pxe => W::Pxe,
            model::BootDevice::Cd => W::Cd,
            model::BootDevice::Hdd => W::Hdd,
            model::BootDevice::Usb => W::Usb,
            model::BootDevice::BiosSetup => W::BiosSetup,
        }
    }
}

impl IntoHost for wit::machine::Cpu {
    type Host = model::Cpu;
    fn into_host(self) -> model::Cpu {
        model::Cpu {
            model: self.model,
            cores: self.cores,
            threads: self.threads,
        }
    }
}

impl IntoHost for wit::machine::MachineNic {
    type Host = model::MachineNic;
    fn into_host(self) -> model::MachineNic {
        model::MachineNic {
            id: self.id,
            mac: self.mac,
            speed_mbps: self.speed_mbps,
        }
    }
}

impl IntoHost for wit::machine::MachineDisk {
    type Host = model::MachineDisk;
    fn into_host(self) -> model::MachineDisk {
        model::MachineDisk {
            id: self.id,
            capacity: self.capacity,
            model: self.model,
            serial: self.serial,
        }
    }
}

impl IntoHost for wit::machine::Inventory {
    type Host = model::MachineInventory;
    fn into_host(self) -> model::MachineInventory {
        model::MachineInventory {
            name: self.name,
            manufacturer: self.manufacturer,
            model: self.model,
            serial: self.serial,
            cpus: self.cpus.into_host(),
            memory: self.memory,
            nics: self.nics.into_host(),
            disks: self.disks.into_host(),
            power: self.power.into_host(),
            firmware: self.firmware.into_host(),
        }
    }
}
