//! Contract 0.2.0 (frozen) ↔ the host's types. 0.2.0 knows no hardware, host capacity,
//! shared devices or labels: those read as unknown, and a VM spec's hardware is not passed
//! (a 0.2.0 hypervisor takes its own defaults).

super::same_shape!(v0_2);

impl IntoHost for wit::Device {
    type Host = model::VmDevice;
    fn into_host(self) -> model::VmDevice {
        model::VmDevice {
            id: self.id,
            backing: self.backing.into_host(),
            capacity: self.capacity,
            mount_point: self.mount_point,
            shared: false,
            labels: Vec::new(),
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
            hardware: model::Hardware::default(),
        }
    }
}

impl IntoHost for wit::HostInfo {
    type Host = model::HostInfo;
    fn into_host(self) -> model::HostInfo {
        model::HostInfo {
            id: self.id,
            name: self.name,
            cpus: None,
            memory: None,
            free_capacity: None,
        }
    }
}

impl FromHost<model::VmSpec> for wit::VmSpec {
    fn from_host(spec: &model::VmSpec) -> Self {
        wit::VmSpec {
            name: spec.name.clone(),
            host_id: spec.host_id.clone(),
            devices: spec.devices.iter().map(FromHost::from_host).collect(),
        }
    }
}
