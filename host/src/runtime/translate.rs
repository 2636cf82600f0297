//! Contract 0.2.0's generated types ↔ the host's own (`crate::model`). The engine speaks only
//! the host's types; a later contract version adds its translation beside this one.

use crate::contract as wit;
use crate::model;

/// An adapter's answer as the host's type.
pub(crate) trait IntoHost {
    /// The host's type.
    type Host;
    /// Translates.
    fn into_host(self) -> Self::Host;
}

/// Answers that need no translation.
macro_rules! same {
    ($($t:ty),*) => {$(
        impl IntoHost for $t {
            type Host = $t;
            fn into_host(self) -> $t {
                self
            }
        }
    )*};
}
same!((), u64, Vec<u8>, wasmtime::component::ResourceAny);

impl<T: IntoHost> IntoHost for Vec<T> {
    type Host = Vec<T::Host>;
    fn into_host(self) -> Self::Host {
        self.into_iter().map(IntoHost::into_host).collect()
    }
}

impl IntoHost for wit::AdapterError {
    type Host = model::AdapterError;
    fn into_host(self) -> model::AdapterError {
        use model::AdapterError as H;
        match self {
            wit::AdapterError::NotFound(m) => H::NotFound(m),
            wit::AdapterError::Conflict(m) => H::Conflict(m),
            wit::AdapterError::Invalid(m) => H::Invalid(m),
            wit::AdapterError::Unsupported(m) => H::Unsupported(m),
            wit::AdapterError::Denied(m) => H::Denied(m),
            wit::AdapterError::Transient(m) => H::Transient(m),
            wit::AdapterError::Internal(m) => H::Internal(m),
        }
    }
}

impl IntoHost for wit::MappingMode {
    type Host = model::MappingMode;
    fn into_host(self) -> model::MappingMode {
        match self {
            wit::MappingMode::Physical => model::MappingMode::Physical,
            wit::MappingMode::Virtual => model::MappingMode::Virtual,
        }
    }
}

impl IntoHost for wit::Device {
    type Host = model::VmDevice;
    fn into_host(self) -> model::VmDevice {
        model::VmDevice {
            id: self.id,
            backing: match self.backing {
                wit::DeviceBacking::VirtualDisk(disk) => model::DeviceBacking::VirtualDisk(disk),
                wit::DeviceBacking::MappedLun(lun) => {
                    model::DeviceBacking::MappedLun(model::MappedLun {
                        wwn: lun.wwn,
                        mode: lun.mode.into_host(),
                    })
                }
            },
            capacity: self.capacity,
            mount_point: self.mount_point,
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
            power: match self.power {
                wit::PowerState::On => model::PowerState::On,
                wit::PowerState::Off => model::PowerState::Off,
            },
            devices: self.devices.into_host(),
        }
    }
}

impl IntoHost for wit::HostInfo {
    type Host = model::HostInfo;
    fn into_host(self) -> model::HostInfo {
        model::HostInfo {
            id: self.id,
            name: self.name,
        }
    }
}

impl IntoHost for wit::SnapshotRef {
    type Host = model::SnapshotRef;
    fn into_host(self) -> model::SnapshotRef {
        model::SnapshotRef {
            id: self.id,
            source: self.source,
            created_at: self.created_at,
        }
    }
}

impl IntoHost for wit::LunInfo {
    type Host = model::LunInfo;
    fn into_host(self) -> model::LunInfo {
        model::LunInfo {
            wwn: self.wwn,
            name: self.name,
            capacity: self.capacity,
            exposed_to: self.exposed_to,
        }
    }
}

impl IntoHost for wit::Extent {
    type Host = model::Extent;
    fn into_host(self) -> model::Extent {
        model::Extent {
            offset: self.offset,
            length: self.length,
        }
    }
}

/// The host's argument in the contract's type.
pub(crate) fn mapped_lun(lun: &model::MappedLun) -> wit::MappedLun {
    wit::MappedLun {
        wwn: lun.wwn.clone(),
        mode: match lun.mode {
            model::MappingMode::Physical => wit::MappingMode::Physical,
            model::MappingMode::Virtual => wit::MappingMode::Virtual,
        },
    }
}

/// The host's argument in the contract's type.
pub(crate) fn new_disk(disk: &model::NewDisk) -> wit::NewDisk {
    wit::NewDisk {
        capacity: disk.capacity,
        mount_point: disk.mount_point.clone(),
    }
}

/// The host's argument in the contract's type.
pub(crate) fn lun_mapping(mapping: &model::LunMapping) -> wit::LunMapping {
    wit::LunMapping {
        lun: mapped_lun(&mapping.lun),
        capacity: mapping.capacity,
        mount_point: mapping.mount_point.clone(),
    }
}

/// The host's argument in the contract's type.
pub(crate) fn vm_spec(spec: &model::VmSpec) -> wit::VmSpec {
    wit::VmSpec {
        name: spec.name.clone(),
        host_id: spec.host_id.clone(),
        devices: spec
            .devices
            .iter()
            .map(|d| match d {
                model::DeviceSpec::NewVirtualDisk(disk) => {
                    wit::DeviceSpec::NewVirtualDisk(new_disk(disk))
                }
                model::DeviceSpec::MapLun(m) => wit::DeviceSpec::MapLun(lun_mapping(m)),
            })
            .collect(),
    }
}
