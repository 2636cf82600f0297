//! The lab hypervisor: hypervisor hosts, VMs with power state and devices, virtual disks as
//! thin copy-on-write volumes in the endpoint's data dir, and LUN mappings by WWN.
//!
//! Like a real hypervisor it refuses to snapshot a LUN mapped in physical compatibility
//! mode (`unsupported`), so the host must go to the array. Mapped LUNs' bytes live on the
//! array: reading or writing them goes through the array adapter that owns the WWN.
//!
//! Settings: `hosts` (comma-separated, default `esx-a,esx-b,proxy-1`).

mod vm;

use lab_common::{
    VolumeReader, VolumeWriter, check_mount_point, check_wwn, lab, random_hex, store_error,
    token_key,
};
use tidemark_sdk::{
    About, AdapterError, AdapterResult, Device, DeviceBacking, DeviceRead, DeviceSpec, DeviceWrite,
    HostInfo, LunMapping, MappingMode, NewDisk, PowerState, SnapshotRef, VmInfo, VmSpec,
};
use vm::{Attachment, DiskSnapshot, VmRecord};

struct LabHypervisor;

/// The hypervisor hosts this endpoint pretends to manage.
fn hosts() -> Vec<String> {
    tidemark_sdk::setting_or("hosts", "esx-a,esx-b,proxy-1")
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

fn check_host(host_id: &str) -> AdapterResult<()> {
    let known = hosts();
    if known.iter().any(|h| h == host_id) {
        Ok(())
    } else {
        Err(AdapterError::NotFound(format!(
            "no hypervisor host '{host_id}' (hosts: {})",
            known.join(", ")
        )))
    }
}

fn check_capacity(capacity: u64, mount: &str) -> AdapterResult<()> {
    if capacity == 0 || !capacity.is_multiple_of(512) {
        return Err(AdapterError::Invalid(format!(
            "device at {mount}: capacity {capacity} must be a positive multiple of 512 bytes"
        )));
    }
    Ok(())
}

/// Creates the disk volume for a new virtual disk and returns the device.
fn new_disk(vm_id: &str, device_id: String, disk: &NewDisk) -> AdapterResult<Device> {
    check_mount_point(&disk.mount_point)?;
    check_capacity(disk.capacity, &disk.mount_point)?;
    let volume = format!("{vm_id}.{device_id}");
    let lab = lab()?;
    if !lab.volumes.volume_exists(&volume).map_err(store_error)? {
        lab.volumes
            .create_volume(&volume, disk.capacity)
            .map_err(store_error)?;
    }
    Ok(Device {
        id: device_id,
        backing: DeviceBacking::VirtualDisk(volume),
        capacity: disk.capacity,
        mount_point: disk.mount_point.clone(),
        shared: false,
        labels: Vec::new(),
    })
}

fn mapped_lun(device_id: String, mapping: &LunMapping) -> AdapterResult<Device> {
    check_wwn(&mapping.lun.wwn)?;
    check_mount_point(&mapping.mount_point)?;
    check_capacity(mapping.capacity, &mapping.mount_point)?;
    Ok(Device {
        id: device_id,
        backing: DeviceBacking::MappedLun(mapping.lun.clone()),
        capacity: mapping.capacity,
        mount_point: mapping.mount_point.clone(),
        shared: false,
        labels: Vec::new(),
    })
}

/// The volume behind a virtual disk, or why the device has none here.
fn disk_volume<'a>(vm: &'a VmRecord, device_id: &str, purpose: &str) -> AdapterResult<&'a str> {
    let device = vm.device(device_id)?;
    if let Some(attached) = vm.attachments.get(device_id) {
        return Err(AdapterError::Unsupported(format!(
            "cannot {purpose} device {device_id} ({}) of VM {}: it is snapshot {} attached \
             read-only",
            device.mount_point, vm.name, attached.snapshot
        )));
    }
    match &device.backing {
        DeviceBacking::VirtualDisk(volume) => Ok(volume),
        DeviceBacking::MappedLun(lun) if lun.mode == MappingMode::Physical => {
            Err(AdapterError::Unsupported(format!(
                "cannot {purpose} device {device_id} ({}) of VM {}: it is LUN {} mapped in physical \
                 compatibility mode, which the hypervisor cannot snapshot or read; use the array \
                 that owns the LUN",
                device.mount_point, vm.name, lun.wwn
            )))
        }
        DeviceBacking::MappedLun(lun) => Err(AdapterError::Unsupported(format!(
            "cannot {purpose} device {device_id} ({}) of VM {}: it is LUN {} mapped in virtual mode; \
             the lab hypervisor keeps no redo logs for mapped LUNs, use the array that owns the LUN",
            device.mount_point, vm.name, lun.wwn
        ))),
    }
}

impl tidemark_sdk::Hypervisor for LabHypervisor {
    fn about() -> About {
        About {
            vendor: "Tidemark lab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: vec![
                "snapshot-virtual-disks".into(),
                "map-luns".into(),
                "copy-on-write".into(),
            ],
        }
    }

    fn list_hosts() -> AdapterResult<Vec<HostInfo>> {
        Ok(hosts()
            .into_iter()
            .map(|h| HostInfo {
                id: h.clone(),
                name: h,
                // The lab pretends to no capacity it does not have: unknown.
                cpus: None,
                memory: None,
                free_capacity: None,
            })
            .collect())
    }

    fn list_vms() -> AdapterResult<Vec<VmInfo>> {
        Ok(vm::all()?.iter().map(VmRecord::info).collect())
    }

    fn get_vm(vm_id: String) -> AdapterResult<VmInfo> {
        Ok(vm::load(&vm_id)?.info())
    }

    fn create_vm(spec: VmSpec, token: String) -> AdapterResult<VmInfo> {
        let lab = lab()?;
        if let Some(vm_id) = lab.recall::<String>(&token)? {
            return Ok(vm::load(&vm_id)?.info());
        }
        let key = token_key(&token);
        if let Some(made) = vm::all()?
            .into_iter()
            .find(|v| v.created_by.as_deref() == Some(key.as_str()))
        {
            lab.remember(&token, &made.id)?;
            return Ok(made.info());
        }
        if spec.name.trim().is_empty() || spec.name.len() > 80 {
            return Err(AdapterError::Invalid(
                "a VM name must have 1 to 80 characters".into(),
            ));
        }
        check_host(&spec.host_id)?;
        if vm::all()?.iter().any(|v| v.name == spec.name) {
            return Err(AdapterError::Conflict(format!(
                "a VM named '{}' exists already",
                spec.name
            )));
        }
        let vm_id = format!("vm-{}", random_hex(12));
        let mut record = VmRecord::new(&vm_id, &spec.name, &spec.host_id);
        record.created_by = Some(key);
        record.hardware = vm::HardwareRecord::from_spec(&spec.hardware)?;
        for device_spec in &spec.devices {
            let device_id = record.next_device_id();
            let device = match device_spec {
                DeviceSpec::NewVirtualDisk(disk) => new_disk(&vm_id, device_id, disk)?,
                DeviceSpec::MapLun(mapping) => mapped_lun(device_id, mapping)?,
            };
            record.add_device(device)?;
        }
        vm::save(&record)?;
        lab.remember(&token, &vm_id)?;
        tidemark_sdk::log::info(&format!(
            "created VM {} ({vm_id}) on {}",
            spec.name, spec.host_id
        ));
        Ok(record.info())
    }

    fn delete_vm(vm_id: String) -> AdapterResult<()> {
        let record = vm::load(&vm_id)?;
        if record.power == PowerState::On {
            return Err(AdapterError::Conflict(format!(
                "VM {} is powered on; power it off first",
                record.name
            )));
        }
        let lab = lab()?;
        for device in &record.devices {
            if let DeviceBacking::VirtualDisk(volume) = &device.backing
                && !record.attachments.contains_key(&device.id)
                && lab.volumes.volume_exists(volume).map_err(store_error)?
            {
                lab.volumes.delete_volume(volume).map_err(store_error)?;
            }
        }
        vm::remove(&vm_id)
    }

    fn power_on(vm_id: String) -> AdapterResult<()> {
        vm::set_power(&vm_id, PowerState::On)
    }

    fn power_off(vm_id: String) -> AdapterResult<()> {
        vm::set_power(&vm_id, PowerState::Off)
    }

    fn add_disk(vm_id: String, disk: NewDisk, token: String) -> AdapterResult<Device> {
        let lab = lab()?;
        let mut record = vm::load(&vm_id)?;
        if let Some(device_id) = lab.recall::<String>(&token)? {
            return record.device(&device_id).cloned();
        }
        let key = token_key(&token);
        if let Some(made) = record.made_by_token(&key) {
            return Ok(made);
        }
        let device = new_disk(&vm_id, record.next_device_id(), &disk)?;
        record.add_device(device.clone())?;
        record.made_by.insert(key, device.id.clone());
        vm::save(&record)?;
        lab.remember(&token, &device.id)?;
        Ok(device)
    }

    fn map_lun(vm_id: String, mapping: LunMapping, token: String) -> AdapterResult<Device> {
        let lab = lab()?;
        let mut record = vm::load(&vm_id)?;
        if let Some(device_id) = lab.recall::<String>(&token)? {
            return record.device(&device_id).cloned();
        }
        let key = token_key(&token);
        if let Some(made) = record.made_by_token(&key) {
            return Ok(made);
        }
        let device = mapped_lun(record.next_device_id(), &mapping)?;
        record.add_device(device.clone())?;
        record.made_by.insert(key, device.id.clone());
        vm::save(&record)?;
        lab.remember(&token, &device.id)?;
        Ok(device)
    }

    fn unmap_lun(vm_id: String, wwn: String) -> AdapterResult<()> {
        let mut record = vm::load(&vm_id)?;
        let before = record.devices.len();
        record
            .devices
            .retain(|d| !matches!(&d.backing, DeviceBacking::MappedLun(l) if l.wwn == wwn));
        if record.devices.len() == before {
            return Err(AdapterError::NotFound(format!(
                "LUN {wwn} is not mapped to VM {}",
                record.name
            )));
        }
        vm::save(&record)
    }

    fn attach_snapshot(
        vm_id: String,
        source_vm_id: String,
        snapshot_id: String,
        mount_point: String,
        token: String,
    ) -> AdapterResult<Device> {
        let lab = lab()?;
        let mut record = vm::load(&vm_id)?;
        if let Some(device_id) = lab.recall::<String>(&token)? {
            return record.device(&device_id).cloned();
        }
        let key = token_key(&token);
        if let Some(made) = record.made_by_token(&key) {
            return Ok(made);
        }
        check_mount_point(&mount_point)?;
        let source = vm::load(&source_vm_id)?;
        let snapshot = source.snapshot(&snapshot_id)?;
        let capacity = source.device(&snapshot.device_id)?.capacity;
        let device = Device {
            id: record.next_device_id(),
            backing: DeviceBacking::VirtualDisk(format!("{}@{snapshot_id}", snapshot.volume)),
            capacity,
            mount_point,
            shared: false,
            labels: Vec::new(),
        };
        record.add_device(device.clone())?;
        record.attachments.insert(
            device.id.clone(),
            Attachment {
                volume: snapshot.volume.clone(),
                snapshot: snapshot_id,
            },
        );
        record.made_by.insert(key, device.id.clone());
        vm::save(&record)?;
        lab.remember(&token, &device.id)?;
        Ok(device)
    }

    fn detach_disk(vm_id: String, device_id: String) -> AdapterResult<()> {
        let mut record = vm::load(&vm_id)?;
        let device = record.device(&device_id)?.clone();
        if matches!(device.backing, DeviceBacking::MappedLun(_)) {
            return Err(AdapterError::Invalid(format!(
                "device {device_id} of VM {} is a mapped LUN; unmap it instead",
                record.name
            )));
        }
        if record.attachments.remove(&device_id).is_none()
            && let DeviceBacking::VirtualDisk(volume) = &device.backing
        {
            let lab = lab()?;
            if lab.volumes.volume_exists(volume).map_err(store_error)? {
                lab.volumes.delete_volume(volume).map_err(store_error)?;
            }
        }
        record.devices.retain(|d| d.id != device_id);
        vm::save(&record)
    }

    fn snapshot_disks(
        vm_id: String,
        device_ids: Vec<String>,
        token: String,
    ) -> AdapterResult<Vec<SnapshotRef>> {
        let lab = lab()?;
        let mut record = vm::load(&vm_id)?;
        if device_ids.is_empty() {
            return Err(AdapterError::Invalid(
                "snapshot-disks needs at least one device".into(),
            ));
        }
        // Refuse before taking anything, so a refused call leaves nothing behind.
        let volumes = device_ids
            .iter()
            .map(|d| disk_volume(&record, d, "snapshot").map(str::to_string))
            .collect::<AdapterResult<Vec<_>>>()?;
        // One instant for all the disks: the block store fences them (writes wait) around
        // the member snapshots.
        let now = tidemark_sdk::now_ms();
        let ids: Vec<String> = volumes
            .iter()
            .map(|_| format!("hvs-{}", random_hex(12)))
            .collect();
        let tokens: Vec<String> = device_ids.iter().map(|d| format!("{token}/{d}")).collect();
        let members: Vec<(&str, &str, &str)> = volumes
            .iter()
            .zip(&ids)
            .zip(&tokens)
            .map(|((volume, id), token)| (volume.as_str(), id.as_str(), token.as_str()))
            .collect();
        let taken = lab
            .volumes
            .snapshot_group(&members, now)
            .map_err(store_error)?;
        let mut refs = Vec::new();
        for ((device_id, volume), info) in device_ids.iter().zip(&volumes).zip(taken) {
            record.snapshots.insert(
                info.id.clone(),
                DiskSnapshot {
                    device_id: device_id.clone(),
                    volume: volume.clone(),
                    created_at: info.created_at_ms,
                },
            );
            refs.push(SnapshotRef {
                id: info.id,
                source: device_id.clone(),
                created_at: info.created_at_ms,
            });
        }
        vm::save(&record)?;
        Ok(refs)
    }

    fn revert_disks(vm_id: String, snapshot_ids: Vec<String>, token: String) -> AdapterResult<()> {
        let lab = lab()?;
        let record = vm::load(&vm_id)?;
        if record.power == PowerState::On {
            return Err(AdapterError::Conflict(format!(
                "VM {} is powered on; power it off before reverting its disks",
                record.name
            )));
        }
        let snapshots = snapshot_ids
            .iter()
            .map(|id| record.snapshot(id))
            .collect::<AdapterResult<Vec<_>>>()?;
        for (id, snapshot) in snapshot_ids.iter().zip(snapshots) {
            lab.volumes
                .revert(&snapshot.volume, id, &format!("{token}/{id}"))
                .map_err(store_error)?;
        }
        Ok(())
    }

    fn delete_snapshot(vm_id: String, snapshot_id: String) -> AdapterResult<()> {
        let lab = lab()?;
        let mut record = vm::load(&vm_id)?;
        let snapshot = record.snapshot(&snapshot_id)?.clone();
        if let Some(user) = vm::all()?
            .into_iter()
            .find(|v| v.attachments.values().any(|a| a.snapshot == snapshot_id))
        {
            return Err(AdapterError::Conflict(format!(
                "snapshot {snapshot_id} is attached to VM {}; detach it first",
                user.name
            )));
        }
        match lab.volumes.delete_snapshot(&snapshot.volume, &snapshot_id) {
            Ok(()) | Err(lab_blockstore::Error::NotFound(_)) => {}
            Err(e) => return Err(store_error(e)),
        }
        record.snapshots.remove(&snapshot_id);
        vm::save(&record)
    }

    fn list_snapshots(vm_id: String) -> AdapterResult<Vec<SnapshotRef>> {
        let record = vm::load(&vm_id)?;
        Ok(record
            .snapshots
            .iter()
            .map(|(id, s)| SnapshotRef {
                id: id.clone(),
                source: s.device_id.clone(),
                created_at: s.created_at,
            })
            .collect())
    }

    fn open_reader(
        vm_id: String,
        device_id: String,
        snapshot_id: Option<String>,
    ) -> AdapterResult<Box<dyn DeviceRead>> {
        let record = vm::load(&vm_id)?;
        if let Some(attached) = record.attachments.get(&device_id) {
            if snapshot_id.is_some() {
                return Err(AdapterError::Invalid(format!(
                    "device {device_id} is an attached snapshot; it has no snapshots of its own"
                )));
            }
            return VolumeReader::open(&attached.volume, Some(&attached.snapshot));
        }
        let volume = disk_volume(&record, &device_id, "read")?;
        if let Some(snapshot) = &snapshot_id
            && record.snapshot(snapshot)?.device_id != device_id
        {
            return Err(AdapterError::Invalid(format!(
                "snapshot {snapshot} is not a snapshot of device {device_id}"
            )));
        }
        VolumeReader::open(volume, snapshot_id.as_deref())
    }

    fn open_writer(vm_id: String, device_id: String) -> AdapterResult<Box<dyn DeviceWrite>> {
        let record = vm::load(&vm_id)?;
        VolumeWriter::open(disk_volume(&record, &device_id, "write")?)
    }
}

tidemark_sdk::export_hypervisor!(LabHypervisor);
tidemark_sdk::manifest!(r#"{"data-dir": true}"#);
