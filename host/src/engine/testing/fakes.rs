//! In-process fakes of a hypervisor and a storage array behind the engine's ports, so
//! workflows can be tested in milliseconds without Wasm. They keep real bytes (devices,
//! snapshots, clones), honour idempotency tokens, refuse what real systems refuse (a
//! snapshot of a physically mapped LUN, deleting an exposed LUN), and fail on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::engine::ports::{
    CallError, CallErrorKind, CallResult, DataPath, Endpoints, Handle, Hypervisor, ReaderHandle,
    StorageArray, WriterHandle,
};
use crate::model::{
    AdapterError, ConsoleOutput, DeviceBacking, DeviceSpec, Extent, HostInfo, LunInfo, LunMapping,
    MappedLun, MappingMode, NetworkInfo, NewDisk, PowerState, SnapshotRef, VmDevice, VmInfo,
    VmSpec,
};

/// The hypervisor endpoint's name.
pub const HV: &str = "hv";
/// The array endpoint's name.
pub const ARRAY: &str = "array";

#[derive(Debug, Clone)]
struct FakeVm {
    name: String,
    host: String,
    power: PowerState,
    devices: Vec<VmDevice>,
}

#[derive(Debug, Clone)]
struct FakeLun {
    name: String,
    data: Vec<u8>,
    exposed_to: BTreeSet<String>,
}

/// Everything the fake systems hold.
#[derive(Debug, Default)]
pub struct World {
    vms: BTreeMap<String, FakeVm>,
    disks: BTreeMap<String, Vec<u8>>,
    /// Disk snapshots: id → (vm, device, bytes).
    disk_snaps: BTreeMap<String, (String, String, Vec<u8>)>,
    luns: BTreeMap<String, FakeLun>,
    /// LUN snapshots: id → (wwn, bytes).
    lun_snaps: BTreeMap<String, (String, Vec<u8>)>,
    /// Idempotency: token → what it made.
    tokens: BTreeMap<String, String>,
    next: u64,
    /// Calls that fail: call name → how many successful calls of it to allow first.
    failing: BTreeMap<&'static str, u32>,
    /// How many calls of each name were made.
    pub calls: BTreeMap<&'static str, u32>,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }

    fn call(&mut self, endpoint: &str, call: &'static str) -> CallResult<()> {
        *self.calls.entry(call).or_default() += 1;
        if let Some(left) = self.failing.get_mut(call) {
            if *left == 0 {
                return Err(error(
                    endpoint,
                    call,
                    AdapterError::Internal(format!("injected failure of {call}")),
                ));
            }
            *left -= 1;
        }
        Ok(())
    }

    fn recall(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }
}

fn error(endpoint: &str, call: &'static str, e: AdapterError) -> CallError {
    CallError {
        endpoint: endpoint.to_string(),
        call,
        kind: CallErrorKind::Adapter(e),
    }
}

/// A fake hypervisor (`hv`) and array (`array`) sharing one [`World`].
#[derive(Clone, Default)]
pub struct FakeSystems {
    world: Arc<Mutex<World>>,
}

impl FakeSystems {
    /// Locks the world, for set-up and checks.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `call` fail after `after` more successful calls of it.
    pub fn fail(&self, call: &'static str, after: u32) {
        self.world().failing.insert(call, after);
    }

    /// Creates a VM with one virtual disk at `C:` and one physically mapped LUN at `D:`,
    /// each `size` bytes filled with `fill`; returns the VM's id.
    pub fn vm_with_disk_and_lun(&self, name: &str, size: usize, fill: u8) -> String {
        let mut w = self.world();
        let vm = w.id("vm");
        let disk = w.id("disk");
        w.disks.insert(disk.clone(), vec![fill; size]);
        let wwn = format!("naa.60{:030x}", w.next);
        w.next += 1;
        w.luns.insert(
            wwn.clone(),
            FakeLun {
                name: format!("{name}-lun"),
                data: vec![fill; size],
                exposed_to: ["esx-a".to_string()].into(),
            },
        );
        let devices = vec![
            VmDevice {
                id: "dev-0".into(),
                backing: DeviceBacking::VirtualDisk(disk),
                capacity: size as u64,
                mount_point: "C:".into(),
                shared: false,
                labels: Vec::new(),
            },
            VmDevice {
                id: "dev-1".into(),
                backing: DeviceBacking::MappedLun(MappedLun {
                    wwn,
                    mode: MappingMode::Physical,
                }),
                capacity: size as u64,
                mount_point: "D:".into(),
                shared: false,
                labels: Vec::new(),
            },
        ];
        w.vms.insert(
            vm.clone(),
            FakeVm {
                name: name.into(),
                host: "esx-a".into(),
                power: PowerState::On,
                devices,
            },
        );
        vm
    }

    /// Overwrites every byte of every device of VM `vm_id` with `fill`.
    pub fn fill(&self, vm_id: &str, fill: u8) {
        let mut w = self.world();
        let devices = w.vms[vm_id].devices.clone();
        for d in devices {
            match d.backing {
                DeviceBacking::VirtualDisk(disk) => {
                    if let Some(bytes) = w.disks.get_mut(&disk) {
                        bytes.fill(fill);
                    }
                }
                DeviceBacking::MappedLun(l) => {
                    if let Some(lun) = w.luns.get_mut(&l.wwn) {
                        lun.data.fill(fill);
                    }
                }
            }
        }
    }

    /// Overwrites every device of VM `vm_id` with bytes that differ from one 64 KiB chunk
    /// to the next (so a copy of them is many distinct chunks, not one deduplicated one).
    pub fn fill_distinct(&self, vm_id: &str) {
        let pattern = |i: usize| ((i >> 16) as u8).wrapping_mul(37) ^ (i % 251) as u8;
        let mut w = self.world();
        let devices = w.vms[vm_id].devices.clone();
        for d in devices {
            let bytes = match d.backing {
                DeviceBacking::VirtualDisk(disk) => w.disks.get_mut(&disk),
                DeviceBacking::MappedLun(l) => w.luns.get_mut(&l.wwn).map(|lun| &mut lun.data),
            };
            if let Some(bytes) = bytes {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = pattern(i);
                }
            }
        }
    }

    /// The bytes each device of VM `vm_id` holds, by mount point.
    pub fn contents(&self, vm_id: &str) -> BTreeMap<String, Vec<u8>> {
        let w = self.world();
        w.vms[vm_id]
            .devices
            .iter()
            .map(|d| {
                let bytes = match &d.backing {
                    DeviceBacking::VirtualDisk(disk) => w.disks[disk].clone(),
                    DeviceBacking::MappedLun(l) => w.luns[&l.wwn].data.clone(),
                };
                (d.mount_point.clone(), bytes)
            })
            .collect()
    }

    /// A VM's id by name.
    pub fn vm_id(&self, name: &str) -> Option<String> {
        self.world()
            .vms
            .iter()
            .find(|(_, v)| v.name == name)
            .map(|(id, _)| id.clone())
    }

    /// Counts of what exists: (VMs, disk snapshots, LUNs, LUN snapshots).
    pub fn census(&self) -> (usize, usize, usize, usize) {
        let w = self.world();
        (
            w.vms.len(),
            w.disk_snaps.len(),
            w.luns.len(),
            w.lun_snaps.len(),
        )
    }

    /// The power state of VM `vm_id`.
    pub fn power(&self, vm_id: &str) -> PowerState {
        self.world().vms[vm_id].power
    }
}

#[async_trait]
impl Endpoints for FakeSystems {
    async fn hypervisor(&self, endpoint: &str) -> anyhow::Result<Box<dyn Hypervisor>> {
        anyhow::ensure!(endpoint == HV, "no hypervisor endpoint {endpoint}");
        Ok(Box::new(Session(self.clone(), HV)))
    }

    async fn storage_array(&self, endpoint: &str) -> anyhow::Result<Box<dyn StorageArray>> {
        anyhow::ensure!(endpoint == ARRAY, "no array endpoint {endpoint}");
        Ok(Box::new(Session(self.clone(), ARRAY)))
    }

    fn storage_array_names(&self) -> Vec<String> {
        vec![ARRAY.to_string()]
    }
}

/// One session on one of the fake endpoints.
struct Session(FakeSystems, &'static str);

/// What a fake reader reads: the bytes as they were when it was opened.
struct Snapshot(Vec<u8>);

/// Where a fake writer writes.
enum Target {
    Disk(String),
    Lun(String),
}

impl Session {
    fn begin(&self, call: &'static str) -> CallResult<MutexGuard<'_, World>> {
        let mut w = self.0.world();
        w.call(self.1, call)?;
        Ok(w)
    }

    fn refuse<T>(&self, call: &'static str, e: AdapterError) -> CallResult<T> {
        Err(error(self.1, call, e))
    }

    fn vm_info(w: &World, id: &str) -> Option<VmInfo> {
        w.vms.get(id).map(|v| VmInfo {
            id: id.to_string(),
            name: v.name.clone(),
            host_id: v.host.clone(),
            power: v.power,
            devices: v.devices.clone(),
            hardware: Default::default(),
        })
    }

    fn lun_info(wwn: &str, lun: &FakeLun) -> LunInfo {
        LunInfo {
            wwn: wwn.to_string(),
            name: lun.name.clone(),
            capacity: lun.data.len() as u64,
            exposed_to: lun.exposed_to.iter().cloned().collect(),
        }
    }

    fn get_vm_in(&self, w: &World, call: &'static str, id: &str) -> CallResult<VmInfo> {
        Self::vm_info(w, id).map_or_else(
            || self.refuse(call, AdapterError::NotFound(format!("no VM {id}"))),
            Ok,
        )
    }
}

#[async_trait]
impl DataPath for Session {
    async fn reader_size(&mut self, reader: &ReaderHandle) -> CallResult<u64> {
        Ok(reader.0.get::<Snapshot>().map_or(0, |s| s.0.len() as u64))
    }
    async fn read(
        &mut self,
        reader: &ReaderHandle,
        offset: u64,
        length: u64,
    ) -> CallResult<Vec<u8>> {
        drop(self.begin("read")?);
        let bytes = &reader.0.get::<Snapshot>().expect("a fake reader").0;
        let start = (offset as usize).min(bytes.len());
        let end = (offset.saturating_add(length) as usize).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }
    async fn allocated_extents(&mut self, reader: &ReaderHandle) -> CallResult<Vec<Extent>> {
        let size = self.reader_size(reader).await?;
        Ok(vec![Extent {
            offset: 0,
            length: size,
        }])
    }
    async fn changed_extents(&mut self, _: &ReaderHandle, _: &str) -> CallResult<Vec<Extent>> {
        self.refuse(
            "changed-extents",
            AdapterError::Unsupported("fakes read everything".into()),
        )
    }
    async fn close_reader(&mut self, _: ReaderHandle) -> CallResult<()> {
        Ok(())
    }
    async fn writer_size(&mut self, writer: &WriterHandle) -> CallResult<u64> {
        let w = self.0.world();
        Ok(match writer.0.get::<Target>() {
            Some(Target::Disk(d)) => w.disks.get(d).map_or(0, |b| b.len() as u64),
            Some(Target::Lun(l)) => w.luns.get(l).map_or(0, |l| l.data.len() as u64),
            None => 0,
        })
    }
    async fn write(&mut self, writer: &WriterHandle, offset: u64, data: &[u8]) -> CallResult<()> {
        let mut w = self.begin("write")?;
        let bytes = match writer.0.get::<Target>() {
            Some(Target::Disk(d)) => w.disks.get_mut(d).map(|b| b.as_mut_slice()),
            Some(Target::Lun(l)) => w.luns.get_mut(l).map(|l| l.data.as_mut_slice()),
            None => None,
        };
        let Some(bytes) = bytes else {
            return self.refuse("write", AdapterError::NotFound("the device is gone".into()));
        };
        let start = offset as usize;
        if start + data.len() > bytes.len() {
            return self.refuse("write", AdapterError::Invalid("write past the end".into()));
        }
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
    async fn flush(&mut self, _: &WriterHandle) -> CallResult<()> {
        Ok(())
    }
    async fn close_writer(&mut self, _: WriterHandle) -> CallResult<()> {
        Ok(())
    }
}

#[async_trait]
impl Hypervisor for Session {
    fn endpoint(&self) -> &str {
        self.1
    }
    async fn list_hosts(&mut self) -> CallResult<Vec<HostInfo>> {
        drop(self.begin("list-hosts")?);
        Ok(["esx-a", "esx-b", "proxy-1"]
            .iter()
            .map(|h| HostInfo {
                id: h.to_string(),
                name: h.to_string(),
                cpus: None,
                memory: None,
                free_capacity: None,
            })
            .collect())
    }
    async fn list_vms(&mut self) -> CallResult<Vec<VmInfo>> {
        let w = self.begin("list-vms")?;
        Ok(w.vms
            .keys()
            .filter_map(|id| Self::vm_info(&w, id))
            .collect())
    }
    async fn get_vm(&mut self, vm_id: &str) -> CallResult<VmInfo> {
        let w = self.begin("get-vm")?;
        self.get_vm_in(&w, "get-vm", vm_id)
    }
    async fn create_vm(&mut self, spec: &VmSpec, token: &str) -> CallResult<VmInfo> {
        let mut w = self.begin("create-vm")?;
        if let Some(id) = w.recall(token) {
            return self.get_vm_in(&w, "create-vm", &id);
        }
        let id = w.id("vm");
        let mut devices = Vec::new();
        for (i, d) in spec.devices.iter().enumerate() {
            match d {
                DeviceSpec::NewVirtualDisk(NewDisk {
                    capacity,
                    mount_point,
                }) => {
                    let disk = w.id("disk");
                    w.disks.insert(disk.clone(), vec![0; *capacity as usize]);
                    devices.push(VmDevice {
                        id: format!("dev-{i}"),
                        backing: DeviceBacking::VirtualDisk(disk),
                        capacity: *capacity,
                        mount_point: mount_point.clone(),
                        shared: false,
                        labels: Vec::new(),
                    });
                }
                DeviceSpec::MapLun(m) => devices.push(VmDevice {
                    id: format!("dev-{i}"),
                    backing: DeviceBacking::MappedLun(m.lun.clone()),
                    capacity: m.capacity,
                    mount_point: m.mount_point.clone(),
                    shared: false,
                    labels: Vec::new(),
                }),
            }
        }
        w.vms.insert(
            id.clone(),
            FakeVm {
                name: spec.name.clone(),
                host: spec.host_id.clone(),
                power: PowerState::Off,
                devices,
            },
        );
        w.tokens.insert(token.to_string(), id.clone());
        self.get_vm_in(&w, "create-vm", &id)
    }
    async fn delete_vm(&mut self, vm_id: &str) -> CallResult<()> {
        let mut w = self.begin("delete-vm")?;
        match w.vms.remove(vm_id) {
            Some(_) => Ok(()),
            None => self.refuse(
                "delete-vm",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            ),
        }
    }
    async fn power_on(&mut self, vm_id: &str) -> CallResult<()> {
        let mut w = self.begin("power-on")?;
        match w.vms.get_mut(vm_id) {
            Some(vm) => {
                vm.power = PowerState::On;
                Ok(())
            }
            None => self.refuse("power-on", AdapterError::NotFound(format!("no VM {vm_id}"))),
        }
    }
    async fn power_off(&mut self, vm_id: &str) -> CallResult<()> {
        let mut w = self.begin("power-off")?;
        match w.vms.get_mut(vm_id) {
            Some(vm) => {
                vm.power = PowerState::Off;
                Ok(())
            }
            None => self.refuse(
                "power-off",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            ),
        }
    }
    async fn add_disk(&mut self, _: &str, _: &NewDisk, _: &str) -> CallResult<VmDevice> {
        self.refuse(
            "add-disk",
            AdapterError::Unsupported("not needed by the workflows".into()),
        )
    }
    async fn map_lun(
        &mut self,
        vm_id: &str,
        mapping: &LunMapping,
        token: &str,
    ) -> CallResult<VmDevice> {
        let mut w = self.begin("map-lun")?;
        if !w.luns.contains_key(&mapping.lun.wwn) {
            return self.refuse(
                "map-lun",
                AdapterError::NotFound(format!("no LUN {}", mapping.lun.wwn)),
            );
        }
        let next = w.id("dev");
        let Some(vm) = w.vms.get_mut(vm_id) else {
            return self.refuse("map-lun", AdapterError::NotFound(format!("no VM {vm_id}")));
        };
        if let Some(d) = vm
            .devices
            .iter()
            .find(|d| d.mount_point == mapping.mount_point)
        {
            return Ok(d.clone());
        }
        let device = VmDevice {
            id: next,
            backing: DeviceBacking::MappedLun(mapping.lun.clone()),
            capacity: mapping.capacity,
            mount_point: mapping.mount_point.clone(),
            shared: false,
            labels: Vec::new(),
        };
        vm.devices.push(device.clone());
        let _ = token;
        Ok(device)
    }
    async fn unmap_lun(&mut self, vm_id: &str, wwn: &str) -> CallResult<()> {
        let mut w = self.begin("unmap-lun")?;
        let Some(vm) = w.vms.get_mut(vm_id) else {
            return self.refuse(
                "unmap-lun",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            );
        };
        let before = vm.devices.len();
        vm.devices
            .retain(|d| !matches!(&d.backing, DeviceBacking::MappedLun(l) if l.wwn == wwn));
        if vm.devices.len() == before {
            return self.refuse(
                "unmap-lun",
                AdapterError::NotFound(format!("{wwn} is not mapped")),
            );
        }
        Ok(())
    }
    async fn attach_snapshot(
        &mut self,
        vm_id: &str,
        _source_vm_id: &str,
        snapshot_id: &str,
        mount_point: &str,
        _token: &str,
    ) -> CallResult<VmDevice> {
        let mut w = self.begin("attach-snapshot")?;
        let Some((_, _, bytes)) = w.disk_snaps.get(snapshot_id).cloned() else {
            return self.refuse(
                "attach-snapshot",
                AdapterError::NotFound(format!("no snapshot {snapshot_id}")),
            );
        };
        let Some(vm) = w.vms.get_mut(vm_id) else {
            return self.refuse(
                "attach-snapshot",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            );
        };
        if let Some(d) = vm.devices.iter().find(|d| d.mount_point == mount_point) {
            return Ok(d.clone());
        }
        let device = VmDevice {
            id: format!("att-{snapshot_id}"),
            backing: DeviceBacking::VirtualDisk(format!("snap:{snapshot_id}")),
            capacity: bytes.len() as u64,
            mount_point: mount_point.to_string(),
            shared: false,
            labels: Vec::new(),
        };
        vm.devices.push(device.clone());
        Ok(device)
    }
    async fn detach_disk(&mut self, vm_id: &str, device_id: &str) -> CallResult<()> {
        let mut w = self.begin("detach-disk")?;
        let Some(vm) = w.vms.get_mut(vm_id) else {
            return self.refuse(
                "detach-disk",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            );
        };
        let before = vm.devices.len();
        vm.devices.retain(|d| d.id != device_id);
        if vm.devices.len() == before {
            return self.refuse(
                "detach-disk",
                AdapterError::NotFound(format!("no device {device_id}")),
            );
        }
        Ok(())
    }
    async fn snapshot_disks(
        &mut self,
        vm_id: &str,
        device_ids: &[String],
        token: &str,
    ) -> CallResult<Vec<SnapshotRef>> {
        let mut w = self.begin("snapshot-disks")?;
        let vm = self.get_vm_in(&w, "snapshot-disks", vm_id)?;
        let mut out = Vec::new();
        for id in device_ids {
            let key = format!("{token}/{id}");
            if let Some(snap) = w.recall(&key) {
                out.push(SnapshotRef {
                    id: snap,
                    source: id.clone(),
                    created_at: 1,
                });
                continue;
            }
            let Some(device) = vm.devices.iter().find(|d| &d.id == id) else {
                return self.refuse(
                    "snapshot-disks",
                    AdapterError::NotFound(format!("no device {id}")),
                );
            };
            let DeviceBacking::VirtualDisk(disk) = &device.backing else {
                return self.refuse(
                    "snapshot-disks",
                    AdapterError::Unsupported(format!(
                        "{id} is a mapped LUN; snapshot it on its array"
                    )),
                );
            };
            let bytes = w.disks[disk].clone();
            let snap = w.id("dsnap");
            w.disk_snaps
                .insert(snap.clone(), (vm_id.to_string(), id.clone(), bytes));
            w.tokens.insert(key, snap.clone());
            out.push(SnapshotRef {
                id: snap,
                source: id.clone(),
                created_at: 1,
            });
        }
        Ok(out)
    }
    async fn revert_disks(
        &mut self,
        vm_id: &str,
        snapshot_ids: &[String],
        _token: &str,
    ) -> CallResult<()> {
        let mut w = self.begin("revert-disks")?;
        for snap in snapshot_ids {
            let Some((vm, device, bytes)) = w.disk_snaps.get(snap).cloned() else {
                return self.refuse(
                    "revert-disks",
                    AdapterError::NotFound(format!("no snapshot {snap}")),
                );
            };
            if vm != vm_id {
                return self.refuse(
                    "revert-disks",
                    AdapterError::Invalid(format!("{snap} is not of {vm_id}")),
                );
            }
            let disk = w.vms[&vm].devices.iter().find_map(|d| match &d.backing {
                DeviceBacking::VirtualDisk(disk) if d.id == device => Some(disk.clone()),
                _ => None,
            });
            if let Some(disk) = disk {
                w.disks.insert(disk, bytes);
            }
        }
        Ok(())
    }
    async fn delete_snapshot(&mut self, _vm_id: &str, snapshot_id: &str) -> CallResult<()> {
        let mut w = self.begin("delete-disk-snapshot")?;
        match w.disk_snaps.remove(snapshot_id) {
            Some(_) => Ok(()),
            None => self.refuse(
                "delete-snapshot",
                AdapterError::NotFound(format!("no snapshot {snapshot_id}")),
            ),
        }
    }
    async fn list_snapshots(&mut self, vm_id: &str) -> CallResult<Vec<SnapshotRef>> {
        let w = self.begin("list-disk-snapshots")?;
        Ok(w.disk_snaps
            .iter()
            .filter(|(_, (vm, _, _))| vm == vm_id)
            .map(|(id, (_, device, _))| SnapshotRef {
                id: id.clone(),
                source: device.clone(),
                created_at: 1,
            })
            .collect())
    }
    async fn open_reader(
        &mut self,
        vm_id: &str,
        device_id: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle> {
        let w = self.begin("open-disk-reader")?;
        let bytes = match snapshot_id {
            Some(snap) => w.disk_snaps.get(snap).map(|(_, _, b)| b.clone()),
            None => w
                .vms
                .get(vm_id)
                .and_then(|vm| vm.devices.iter().find(|d| d.id == device_id))
                .and_then(|d| match &d.backing {
                    DeviceBacking::VirtualDisk(disk) => match disk.strip_prefix("snap:") {
                        Some(snap) => w.disk_snaps.get(snap).map(|(_, _, b)| b.clone()),
                        None => w.disks.get(disk).cloned(),
                    },
                    DeviceBacking::MappedLun(_) => None,
                }),
        };
        match bytes {
            Some(bytes) => Ok(ReaderHandle(Handle::new(Snapshot(bytes)))),
            None => self.refuse(
                "open-reader",
                AdapterError::NotFound(format!("no disk {device_id} of {vm_id}")),
            ),
        }
    }
    async fn open_writer(&mut self, vm_id: &str, device_id: &str) -> CallResult<WriterHandle> {
        let w = self.begin("open-disk-writer")?;
        let disk = w
            .vms
            .get(vm_id)
            .and_then(|vm| vm.devices.iter().find(|d| d.id == device_id))
            .and_then(|d| match &d.backing {
                DeviceBacking::VirtualDisk(disk) if w.disks.contains_key(disk) => {
                    Some(disk.clone())
                }
                _ => None,
            });
        match disk {
            Some(disk) => Ok(WriterHandle(Handle::new(Target::Disk(disk)))),
            None => self.refuse(
                "open-writer",
                AdapterError::NotFound(format!("no writable disk {device_id} of {vm_id}")),
            ),
        }
    }
    async fn quiesce(&mut self, vm_id: &str) -> CallResult<()> {
        // No guest writes behind the fake's back: holding them is nothing to do.
        let w = self.begin("quiesce")?;
        if w.vms.contains_key(vm_id) {
            Ok(())
        } else {
            self.refuse("quiesce", AdapterError::NotFound(format!("no VM {vm_id}")))
        }
    }
    async fn unquiesce(&mut self, vm_id: &str) -> CallResult<()> {
        let w = self.begin("unquiesce")?;
        if w.vms.contains_key(vm_id) {
            Ok(())
        } else {
            self.refuse(
                "unquiesce",
                AdapterError::NotFound(format!("no VM {vm_id}")),
            )
        }
    }
    async fn read_console(&mut self, vm_id: &str, _from: u64) -> CallResult<ConsoleOutput> {
        drop(self.begin("read-console")?);
        let message = format!("the fake has no console for {vm_id}");
        self.refuse("read-console", AdapterError::Unsupported(message))
    }
    async fn create_network(
        &mut self,
        name: &str,
        _isolated: bool,
        _token: &str,
    ) -> CallResult<NetworkInfo> {
        drop(self.begin("create-network")?);
        let message = format!("the fake has no networks ({name})");
        self.refuse("create-network", AdapterError::Unsupported(message))
    }
    async fn delete_network(&mut self, network_id: &str) -> CallResult<()> {
        drop(self.begin("delete-network")?);
        let message = format!("the fake has no networks ({network_id})");
        self.refuse("delete-network", AdapterError::Unsupported(message))
    }
}

#[async_trait]
impl StorageArray for Session {
    fn endpoint(&self) -> &str {
        self.1
    }
    async fn list_luns(&mut self) -> CallResult<Vec<LunInfo>> {
        let w = self.begin("list-luns")?;
        Ok(w.luns
            .iter()
            .map(|(wwn, l)| Self::lun_info(wwn, l))
            .collect())
    }
    async fn get_lun(&mut self, wwn: &str) -> CallResult<LunInfo> {
        let w = self.begin("get-lun")?;
        match w.luns.get(wwn) {
            Some(l) => Ok(Self::lun_info(wwn, l)),
            None => self.refuse("get-lun", AdapterError::NotFound(format!("no LUN {wwn}"))),
        }
    }
    async fn create_lun(&mut self, name: &str, capacity: u64, token: &str) -> CallResult<LunInfo> {
        let mut w = self.begin("create-lun")?;
        if let Some(wwn) = w.recall(token) {
            return Ok(Self::lun_info(&wwn, &w.luns[&wwn]));
        }
        let wwn = format!("naa.61{:030x}", w.next);
        w.next += 1;
        let lun = FakeLun {
            name: name.to_string(),
            data: vec![0; capacity as usize],
            exposed_to: BTreeSet::new(),
        };
        w.luns.insert(wwn.clone(), lun.clone());
        w.tokens.insert(token.to_string(), wwn.clone());
        Ok(Self::lun_info(&wwn, &lun))
    }
    async fn delete_lun(&mut self, wwn: &str) -> CallResult<()> {
        let mut w = self.begin("delete-lun")?;
        match w.luns.get(wwn) {
            None => self.refuse(
                "delete-lun",
                AdapterError::NotFound(format!("no LUN {wwn}")),
            ),
            Some(l) if !l.exposed_to.is_empty() => self.refuse(
                "delete-lun",
                AdapterError::Conflict(format!("{wwn} is exposed")),
            ),
            Some(_) => {
                w.luns.remove(wwn);
                Ok(())
            }
        }
    }
    async fn expose(&mut self, wwn: &str, host_id: &str) -> CallResult<()> {
        let mut w = self.begin("expose")?;
        match w.luns.get_mut(wwn) {
            Some(l) => {
                l.exposed_to.insert(host_id.to_string());
                Ok(())
            }
            None => self.refuse("expose", AdapterError::NotFound(format!("no LUN {wwn}"))),
        }
    }
    async fn unexpose(&mut self, wwn: &str, host_id: &str) -> CallResult<()> {
        let mut w = self.begin("unexpose")?;
        match w.luns.get_mut(wwn) {
            Some(l) => {
                l.exposed_to.remove(host_id);
                Ok(())
            }
            None => self.refuse("unexpose", AdapterError::NotFound(format!("no LUN {wwn}"))),
        }
    }
    async fn snapshot_luns(
        &mut self,
        wwns: &[String],
        token: &str,
    ) -> CallResult<Vec<SnapshotRef>> {
        let mut w = self.begin("snapshot-luns")?;
        let mut out = Vec::new();
        for wwn in wwns {
            let key = format!("{token}/{wwn}");
            if let Some(snap) = w.recall(&key) {
                out.push(SnapshotRef {
                    id: snap,
                    source: wwn.clone(),
                    created_at: 1,
                });
                continue;
            }
            let Some(data) = w.luns.get(wwn).map(|l| l.data.clone()) else {
                return self.refuse(
                    "snapshot-luns",
                    AdapterError::NotFound(format!("no LUN {wwn}")),
                );
            };
            let snap = w.id("lsnap");
            w.lun_snaps.insert(snap.clone(), (wwn.clone(), data));
            w.tokens.insert(key, snap.clone());
            out.push(SnapshotRef {
                id: snap,
                source: wwn.clone(),
                created_at: 1,
            });
        }
        Ok(out)
    }
    async fn revert_lun(&mut self, wwn: &str, snapshot_id: &str, _token: &str) -> CallResult<()> {
        let mut w = self.begin("revert-lun")?;
        let Some((of, data)) = w.lun_snaps.get(snapshot_id).cloned() else {
            return self.refuse(
                "revert-lun",
                AdapterError::NotFound(format!("no snapshot {snapshot_id}")),
            );
        };
        if of != wwn {
            return self.refuse(
                "revert-lun",
                AdapterError::Invalid(format!("{snapshot_id} is not of {wwn}")),
            );
        }
        match w.luns.get_mut(wwn) {
            Some(l) => {
                l.data = data;
                Ok(())
            }
            None => self.refuse(
                "revert-lun",
                AdapterError::NotFound(format!("no LUN {wwn}")),
            ),
        }
    }
    async fn delete_snapshot(&mut self, snapshot_id: &str) -> CallResult<()> {
        let mut w = self.begin("delete-lun-snapshot")?;
        match w.lun_snaps.remove(snapshot_id) {
            Some(_) => Ok(()),
            None => self.refuse(
                "delete-snapshot",
                AdapterError::NotFound(format!("no snapshot {snapshot_id}")),
            ),
        }
    }
    async fn list_snapshots(&mut self) -> CallResult<Vec<SnapshotRef>> {
        let w = self.begin("list-lun-snapshots")?;
        Ok(w.lun_snaps
            .iter()
            .map(|(id, (wwn, _))| SnapshotRef {
                id: id.clone(),
                source: wwn.clone(),
                created_at: 1,
            })
            .collect())
    }
    async fn clone_snapshot(
        &mut self,
        snapshot_id: &str,
        name: &str,
        token: &str,
    ) -> CallResult<LunInfo> {
        let mut w = self.begin("clone-snapshot")?;
        if let Some(wwn) = w.recall(token) {
            return Ok(Self::lun_info(&wwn, &w.luns[&wwn]));
        }
        let Some((_, data)) = w.lun_snaps.get(snapshot_id).cloned() else {
            return self.refuse(
                "clone-snapshot",
                AdapterError::NotFound(format!("no snapshot {snapshot_id}")),
            );
        };
        let wwn = format!("naa.62{:030x}", w.next);
        w.next += 1;
        let lun = FakeLun {
            name: name.to_string(),
            data,
            exposed_to: BTreeSet::new(),
        };
        w.luns.insert(wwn.clone(), lun.clone());
        w.tokens.insert(token.to_string(), wwn.clone());
        Ok(Self::lun_info(&wwn, &lun))
    }
    async fn open_reader(
        &mut self,
        wwn: &str,
        snapshot_id: Option<&str>,
    ) -> CallResult<ReaderHandle> {
        let w = self.begin("open-lun-reader")?;
        let bytes = match snapshot_id {
            Some(snap) => w.lun_snaps.get(snap).map(|(_, b)| b.clone()),
            None => w.luns.get(wwn).map(|l| l.data.clone()),
        };
        match bytes {
            Some(bytes) => Ok(ReaderHandle(Handle::new(Snapshot(bytes)))),
            None => self.refuse(
                "open-reader",
                AdapterError::NotFound(format!("no LUN {wwn}")),
            ),
        }
    }
    async fn open_writer(&mut self, wwn: &str) -> CallResult<WriterHandle> {
        let w = self.begin("open-lun-writer")?;
        if !w.luns.contains_key(wwn) {
            return self.refuse(
                "open-writer",
                AdapterError::NotFound(format!("no LUN {wwn}")),
            );
        }
        Ok(WriterHandle(Handle::new(Target::Lun(wwn.to_string()))))
    }
}
