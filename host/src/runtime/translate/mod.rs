//! Each contract version's generated types ↔ the host's own (`crate::model`), one module per
//! version. The engine speaks only the host's types. Records whose shape did not change
//! between versions are translated by one macro ([`same_shape`]) instantiated per version;
//! what a version added is translated in its own module.

pub(crate) mod v0_2;
pub(crate) mod v0_3;

/// An adapter's answer as the host's type.
pub(crate) trait IntoHost {
    /// The host's type.
    type Host;
    /// Translates.
    fn into_host(self) -> Self::Host;
}

/// A host argument as one contract version's type; the version is picked by the call's
/// signature, so a call site reads the same for every version.
pub(crate) trait FromHost<H: ?Sized> {
    /// Translates.
    fn from_host(host: &H) -> Self;
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
same!((), u64, String, Vec<u8>, wasmtime::component::ResourceAny);

impl<T: IntoHost> IntoHost for Vec<T> {
    type Host = Vec<T::Host>;
    fn into_host(self) -> Self::Host {
        self.into_iter().map(IntoHost::into_host).collect()
    }
}

impl<T: IntoHost> IntoHost for Option<T> {
    type Host = Option<T::Host>;
    fn into_host(self) -> Self::Host {
        self.map(IntoHost::into_host)
    }
}

impl<A: IntoHost, B: IntoHost> IntoHost for (A, B) {
    type Host = (A::Host, B::Host);
    fn into_host(self) -> Self::Host {
        (self.0.into_host(), self.1.into_host())
    }
}

/// Translations of the records every version shares unchanged since 0.2.0, for the version
/// module `crate::contract::$version`.
macro_rules! same_shape {
    ($version:ident) => {
        use crate::contract::$version as wit;
        use crate::model;
        use $crate::runtime::translate::{FromHost, IntoHost};

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

        impl IntoHost for wit::AdapterInfo {
            type Host = model::AdapterInfo;
            fn into_host(self) -> model::AdapterInfo {
                model::AdapterInfo {
                    contract: self.contract,
                    vendor: self.vendor,
                    version: self.version,
                    capabilities: self.capabilities,
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

        impl IntoHost for wit::DeviceBacking {
            type Host = model::DeviceBacking;
            fn into_host(self) -> model::DeviceBacking {
                match self {
                    wit::DeviceBacking::VirtualDisk(disk) => {
                        model::DeviceBacking::VirtualDisk(disk)
                    }
                    wit::DeviceBacking::MappedLun(lun) => {
                        model::DeviceBacking::MappedLun(model::MappedLun {
                            wwn: lun.wwn,
                            mode: lun.mode.into_host(),
                        })
                    }
                }
            }
        }

        impl IntoHost for wit::PowerState {
            type Host = model::PowerState;
            fn into_host(self) -> model::PowerState {
                match self {
                    wit::PowerState::On => model::PowerState::On,
                    wit::PowerState::Off => model::PowerState::Off,
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

        impl FromHost<model::MappedLun> for wit::MappedLun {
            fn from_host(lun: &model::MappedLun) -> Self {
                wit::MappedLun {
                    wwn: lun.wwn.clone(),
                    mode: match lun.mode {
                        model::MappingMode::Physical => wit::MappingMode::Physical,
                        model::MappingMode::Virtual => wit::MappingMode::Virtual,
                    },
                }
            }
        }

        impl FromHost<model::NewDisk> for wit::NewDisk {
            fn from_host(disk: &model::NewDisk) -> Self {
                wit::NewDisk {
                    capacity: disk.capacity,
                    mount_point: disk.mount_point.clone(),
                }
            }
        }

        impl FromHost<model::LunMapping> for wit::LunMapping {
            fn from_host(mapping: &model::LunMapping) -> Self {
                wit::LunMapping {
                    lun: FromHost::from_host(&mapping.lun),
                    capacity: mapping.capacity,
                    mount_point: mapping.mount_point.clone(),
                }
            }
        }

        impl FromHost<model::DeviceSpec> for wit::DeviceSpec {
            fn from_host(device: &model::DeviceSpec) -> Self {
                match device {
                    model::DeviceSpec::NewVirtualDisk(disk) => {
                        wit::DeviceSpec::NewVirtualDisk(FromHost::from_host(disk))
                    }
                    model::DeviceSpec::MapLun(m) => wit::DeviceSpec::MapLun(FromHost::from_host(m)),
                }
            }
        }
    };
}
pub(crate) use same_shape;
