//! The `restore` workflow: a recovery point rebuilt as a new machine from its copies
//! alone (its snapshots may be long gone).
//!
//! check-copies → create-vm (on the chosen host, with a new virtual disk per disk) →
//! create-luns@ARRAY (a new LUN per mapped LUN) → restore-device MOUNT (one per device) →
//! expose-luns@ARRAY → map-luns (each new LUN mapped **as a virtual mapping at its original
//! mount point**) → power-on → record-vm. Compensation deletes the new VM and LUNs.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::device_io::DeviceTarget;
use super::discover::vm_record;
use super::journal::{Done, JobCtx};
use super::steps;
use super::transfer::{self, Restored};
use super::undo::{self, Undo};
use crate::catalog::{CopyRefRecord, MAPPED_LUN, PointRecord, SnapshotRefRecord, VmRecord};
use crate::contract::{
    DeviceBacking, DeviceSpec, LunMapping, MappedLun, MappingMode, NewDisk, VmInfo, VmSpec,
};

/// Where and as what a point is restored.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    /// Hypervisor endpoint of the source VM (the new VM is created there too).
    pub endpoint: String,
    /// Hypervisor host for the new VM.
    pub host: String,
    /// The new VM's name.
    pub name: String,
    /// Array endpoint for the new LUNs; `None` keeps each LUN's original array.
    pub array: Option<String>,
}

/// A LUN made for the new VM.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NewLun {
    array: String,
    wwn: String,
    capacity: u64,
}

/// A device of the point with its copy.
struct Item<'a> {
    snapshot: &'a SnapshotRefRecord,
    copy: &'a CopyRefRecord,
}

/// The point's devices paired with their copies; an error names a device without one.
fn items(point: &PointRecord) -> anyhow::Result<Vec<Item<'_>>> {
    point
        .snapshots
        .iter()
        .map(|s| {
            let copy = point.copy_of(&s.device_ref).ok_or_else(|| {
                anyhow!(
                    "recovery point {} has no copy of the device at {}; run `tidemark copy {} {}` first",
                    point.id,
                    s.mount_point,
                    point.vm_name,
                    point.id
                )
            })?;
            Ok(Item { snapshot: s, copy })
        })
        .collect()
}

/// Checks a point can be restored from copies (before any job exists).
pub fn check_restorable(point: &PointRecord) -> anyhow::Result<()> {
    items(point).map(|_| ())
}

/// Runs (or resumes) a restore of `point` as a new VM.
pub async fn run(
    ctx: &mut JobCtx,
    point: &PointRecord,
    target: &RestoreTarget,
) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let store = ctx.copy_store()?;
    let progress = ctx.progress.clone();
    let items = items(point)?;
    let hv_endpoint = target.endpoint.as_str();

    {
        let (items, store) = (&items, &store);
        ctx.step("check-copies", |_| async move {
            let mut total = 0;
            for item in items {
                total += transfer::check_copy(store, item.copy)?;
            }
            Ok(Done::new(
                (),
                format!(
                    "{} device copies readable, {} to restore",
                    items.len(),
                    crate::units::format_size(total)
                ),
            ))
        })
        .await?;
    }

    let disks: Vec<&Item> = items
        .iter()
        .filter(|i| i.snapshot.device_kind != MAPPED_LUN)
        .collect();
    let mut luns: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for item in items
        .iter()
        .filter(|i| i.snapshot.device_kind == MAPPED_LUN)
    {
        let array = target
            .array
            .clone()
            .unwrap_or_else(|| item.snapshot.endpoint.clone());
        luns.entry(array).or_default().push(item);
    }

    let created: VmInfo = {
        let disks = &disks;
        ctx.step("create-vm", |token| async move {
            let spec = VmSpec {
                name: target.name.clone(),
                host_id: target.host.clone(),
                devices: disks
                    .iter()
                    .map(|i| {
                        DeviceSpec::NewVirtualDisk(NewDisk {
                            capacity: i.copy.size,
                            mount_point: i.snapshot.mount_point.clone(),
                        })
                    })
                    .collect(),
            };
            let info = endpoints
                .hypervisor(hv_endpoint)
                .await?
                .create_vm(&spec, &token)
                .await?;
            let undo = vec![Undo::DeleteVm {
                endpoint: hv_endpoint.to_string(),
                vm_ref: info.id.clone(),
            }];
            for i in disks {
                disk_of(&info, &i.snapshot.mount_point)?;
            }
            let detail = format!(
                "created VM {} ({}) on {} with {} virtual disk(s)",
                target.name,
                info.id,
                target.host,
                disks.len()
            );
            Ok(Done::new(info, detail).undo(undo))
        })
        .await?
    };

    let mut new_luns: BTreeMap<String, NewLun> = BTreeMap::new();
    for (array, group) in &luns {
        let made: BTreeMap<String, NewLun> = ctx
            .step(&format!("create-luns@{array}"), |token| async move {
                let mut sa = endpoints.storage_array(array).await?;
                let mut made = Vec::new();
                let mut out = BTreeMap::new();
                for item in group {
                    let name = format!("{}-{}", target.name, item.snapshot.device_ref);
                    let result = sa
                        .create_lun(&name, item.copy.size, &format!("{token}/{}", item.snapshot.device_ref))
                        .await;
                    let info = match result {
                        Ok(info) => info,
                        Err(e) => {
                            undo::roll_back(catalog, endpoints, None, &made).await;
                            return Err(e.into());
                        }
                    };
                    made.push(Undo::DeleteLun {
                        endpoint: array.clone(),
                        wwn: info.wwn.clone(),
                        exposed_to: vec![target.host.clone()],
                    });
                    if info.capacity < item.copy.size {
                        undo::roll_back(catalog, endpoints, None, &made).await;
                        bail!(
                            "array {array} made LUN {} of {} bytes, smaller than the copy ({} bytes)",
                            info.wwn,
                            info.capacity,
                            item.copy.size
                        );
                    }
                    out.insert(
                        item.snapshot.device_ref.clone(),
                        NewLun { array: array.clone(), wwn: info.wwn, capacity: info.capacity },
                    );
                }
                let detail = format!(
                    "created {} LUN(s) on {array}: {}",
                    out.len(),
                    out.values().map(|l: &NewLun| l.wwn.as_str()).collect::<Vec<_>>().join(", ")
                );
                Ok(Done::new(out, detail).undo(made))
            })
            .await?;
        new_luns.extend(made);
    }

    let mut restored: Vec<(String, Restored)> = Vec::new();
    for item in &items {
        let s = item.snapshot;
        let target_device = match new_luns.get(&s.device_ref) {
            Some(lun) => DeviceTarget::Lun {
                endpoint: lun.array.clone(),
                wwn: lun.wwn.clone(),
                capacity: lun.capacity,
            },
            None => DeviceTarget::Disk {
                endpoint: hv_endpoint.to_string(),
                vm_ref: created.id.clone(),
                device_ref: disk_of(&created, &s.mount_point)?,
                capacity: item.copy.size,
            },
        };
        let (target_device, store, progress) = (&target_device, &store, &progress);
        let done: Restored = ctx
            .step(
                &format!("restore-device {}", s.mount_point),
                |_| async move {
                    let done = transfer::restore_device(
                        endpoints,
                        store,
                        progress.as_ref(),
                        item.copy,
                        target_device,
                        true,
                    )
                    .await?;
                    let detail = format!(
                        "{}: wrote {} of {} from copy {}",
                        s.mount_point,
                        crate::units::format_size(done.bytes_written),
                        crate::units::format_size(item.copy.size),
                        item.copy.copy
                    );
                    Ok(Done::new(done, detail))
                },
            )
            .await?;
        restored.push((s.device_ref.clone(), done));
    }

    let mut lun_arrays: BTreeMap<&str, Vec<&NewLun>> = BTreeMap::new();
    for lun in new_luns.values() {
        lun_arrays.entry(lun.array.as_str()).or_default().push(lun);
    }
    for (array, group) in &lun_arrays {
        ctx.step(&format!("expose-luns@{array}"), |_| async move {
            let mut sa = endpoints.storage_array(array).await?;
            let mut undo = Vec::new();
            for lun in group {
                sa.expose(&lun.wwn, &target.host).await?;
                undo.push(Undo::Unexpose {
                    endpoint: array.to_string(),
                    wwn: lun.wwn.clone(),
                    host: target.host.clone(),
                });
            }
            Ok(Done::new(
                (),
                format!("exposed {} LUN(s) to {}", group.len(), target.host),
            )
            .undo(undo))
        })
        .await?;
    }

    if !new_luns.is_empty() {
        let (new_luns, luns, created) = (&new_luns, &luns, &created);
        ctx.step("map-luns", |token| async move {
            let mut hv = endpoints.hypervisor(hv_endpoint).await?;
            let mut made = Vec::new();
            let mut lines = Vec::new();
            for item in luns.values().flatten() {
                let lun = &new_luns[&item.snapshot.device_ref];
                let mapping = LunMapping {
                    lun: MappedLun {
                        wwn: lun.wwn.clone(),
                        mode: MappingMode::Virtual,
                    },
                    capacity: lun.capacity,
                    mount_point: item.snapshot.mount_point.clone(),
                };
                match hv
                    .map_lun(
                        &created.id,
                        &mapping,
                        &format!("{token}/{}", item.snapshot.device_ref),
                    )
                    .await
                {
                    Ok(device) if device.mount_point == item.snapshot.mount_point => {
                        made.push(Undo::UnmapLun {
                            endpoint: hv_endpoint.to_string(),
                            vm_ref: created.id.clone(),
                            wwn: lun.wwn.clone(),
                        });
                        lines.push(format!(
                            "LUN {} mapped as virtual at {} (was {} LUN {})",
                            lun.wwn,
                            item.snapshot.mount_point,
                            item.snapshot.mode.as_deref().unwrap_or("?"),
                            item.snapshot.wwn.as_deref().unwrap_or("?")
                        ));
                    }
                    other => {
                        let error = match other {
                            Ok(device) => anyhow!(
                                "endpoint {hv_endpoint} mapped LUN {} at {} instead of {}",
                                lun.wwn,
                                device.mount_point,
                                item.snapshot.mount_point
                            ),
                            Err(e) => e.into(),
                        };
                        undo::roll_back(catalog, endpoints, None, &made).await;
                        return Err(error);
                    }
                }
            }
            Ok(Done::new((), lines.join("; ")).undo(made))
        })
        .await?;
    }

    {
        let created = &created;
        ctx.step("power-on", |_| {
            steps::set_power(endpoints, hv_endpoint, &created.id, &target.name, true)
        })
        .await?;
    }

    {
        let (created, new_luns) = (&created, &new_luns);
        ctx.step("record-vm", |_| async move {
            let info = endpoints
                .hypervisor(hv_endpoint)
                .await?
                .get_vm(&created.id)
                .await?;
            super::discover::validate_vm(hv_endpoint, &info)?;
            for lun in new_luns.values() {
                catalog.set_lun_owner(&lun.wwn, &lun.array)?;
            }
            catalog.upsert_vm(&vm_record(&target.name, hv_endpoint, &info))?;
            Ok(
                Done::new((), format!("VM {} recorded in the catalog", target.name)).undo(vec![
                    Undo::ForgetVm {
                        name: target.name.clone(),
                    },
                ]),
            )
        })
        .await?;
    }
    let recorded: VmRecord = catalog
        .vm(&target.name)?
        .ok_or_else(|| anyhow!("VM {} vanished from the catalog", target.name))?;

    let devices: Vec<serde_json::Value> = recorded
        .devices
        .iter()
        .map(|d| {
            let written = items
                .iter()
                .find(|i| i.snapshot.mount_point == d.mount_point)
                .and_then(|i| restored.iter().find(|(r, _)| *r == i.snapshot.device_ref))
                .map_or(0, |(_, r)| r.bytes_written);
            json!({
                "mount_point": d.mount_point,
                "kind": d.kind,
                "wwn": d.wwn,
                "mode": d.mode,
                "capacity": d.capacity,
                "bytes_written": written,
            })
        })
        .collect();
    Ok(json!({
        "vm": target.name,
        "source_vm": point.vm_name,
        "recovery_point": point.id,
        "host": target.host,
        "devices": devices,
        "bytes_written": restored.iter().map(|(_, r)| r.bytes_written).sum::<u64>(),
    }))
}

/// The id of the new VM's virtual disk at `mount`.
fn disk_of(vm: &VmInfo, mount: &str) -> anyhow::Result<String> {
    vm.devices
        .iter()
        .find(|d| d.mount_point == mount && matches!(d.backing, DeviceBacking::VirtualDisk(_)))
        .map(|d| d.id.clone())
        .ok_or_else(|| anyhow!("the new VM {} has no virtual disk at {mount}", vm.name))
}

/// Runs (or resumes) a restore of one device of `vm`, in place, from `point`'s copy:
/// discover → power-off (if on) → safety-snapshot → verify-copy (every chunk, before a
/// byte is written) → restore-device → power-on → release-safety-snapshot. The safety
/// snapshot puts the device back if anything fails; this is also how a LUN whose
/// snapshot is gone is put back from its copy.
pub async fn run_in_place(
    ctx: &mut JobCtx,
    vm: &VmRecord,
    point: &PointRecord,
    mount: &str,
) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let store = ctx.copy_store()?;
    let progress = ctx.progress.clone();
    let item = items(point)?
        .into_iter()
        .find(|i| i.snapshot.mount_point == mount)
        .ok_or_else(|| anyhow!("recovery point {} has no device at {mount}", point.id))?;
    let s = item.snapshot;

    let found: super::discover::Discovered = ctx
        .step("discover", |_| async {
            let found = super::discover::discover(catalog, endpoints, vm).await?;
            let device = found
                .vm
                .devices
                .iter()
                .find(|d| d.mount_point == mount)
                .ok_or_else(|| anyhow!("VM {} has no device at {mount} any more", vm.name))?;
            let same = match &device.backing {
                DeviceBacking::VirtualDisk(_) => {
                    s.device_kind != MAPPED_LUN && device.id == s.device_ref
                }
                DeviceBacking::MappedLun(l) => s.wwn.as_deref() == Some(l.wwn.as_str()),
            };
            if !same {
                bail!(
                    "the device at {mount} of VM {} is not the one point {} copied",
                    vm.name,
                    point.id
                );
            }
            if device.capacity < item.copy.size {
                bail!("the device at {mount} is smaller than its copy");
            }
            let detail = format!("VM {} is powered {}", vm.name, found.vm.power);
            Ok(Done::new(found, detail))
        })
        .await?;
    let was_on = found.vm.power == crate::contract::PowerState::On;
    let vm_ref = found.vm.id.clone();
    let is_lun = s.device_kind == MAPPED_LUN;
    let wwn = s.wwn.clone().unwrap_or_default();
    let array = if is_lun {
        found.lun_owners.get(&wwn).cloned().unwrap_or_default()
    } else {
        String::new()
    };

    if was_on {
        ctx.step("power-off", |_| {
            steps::set_power(endpoints, &vm.endpoint, &vm_ref, &vm.name, false)
        })
        .await?;
    }

    let safety: steps::Taken = {
        let (vm_ref, wwn, array) = (&vm_ref, &wwn, &array);
        ctx.step("safety-snapshot", |token| async move {
            if is_lun {
                steps::snapshot_luns(
                    endpoints,
                    array,
                    std::slice::from_ref(wwn),
                    &token,
                    "safety snapshot of the LUN",
                )
                .await
            } else {
                let ids = [s.device_ref.clone()];
                steps::snapshot_disks(
                    endpoints,
                    &vm.endpoint,
                    vm_ref,
                    &ids,
                    &token,
                    "safety snapshot of the disk",
                )
                .await
            }
        })
        .await?
    };
    let safety_id = safety
        .values()
        .next()
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow!("no safety snapshot was taken"))?;

    {
        let store = &store;
        ctx.step("verify-copy", |_| async move {
            let report = store.verify(std::slice::from_ref(&item.copy.copy));
            if let Some(bad) = report.manifests.iter().find(|m| !m.ok) {
                bail!(
                    "copy {} is damaged ({}); nothing was written",
                    bad.id,
                    bad.error.clone().unwrap_or_else(|| format!(
                        "{} damaged chunk(s)",
                        bad.damaged_chunks.len()
                    ))
                );
            }
            Ok(Done::new(
                (),
                format!(
                    "copy {} verified: {} chunk(s)",
                    item.copy.copy, report.chunks_checked
                ),
            ))
        })
        .await?;
    }

    let target = if is_lun {
        DeviceTarget::Lun {
            endpoint: array.clone(),
            wwn: wwn.clone(),
            capacity: item.copy.size,
        }
    } else {
        DeviceTarget::Disk {
            endpoint: vm.endpoint.clone(),
            vm_ref: vm_ref.clone(),
            device_ref: s.device_ref.clone(),
            capacity: item.copy.size,
        }
    };
    let restored: Restored = {
        let (target, store, progress, safety_id, vm_ref, wwn, array) = (
            &target, &store, &progress, &safety_id, &vm_ref, &wwn, &array,
        );
        ctx.step(&format!("restore-device {mount}"), |token| async move {
            let undo = if is_lun {
                Undo::RevertLun {
                    endpoint: array.clone(),
                    wwn: wwn.clone(),
                    snapshot: safety_id.clone(),
                    token: format!("{token}:undo"),
                }
            } else {
                Undo::RevertDisks {
                    endpoint: vm.endpoint.clone(),
                    vm_ref: vm_ref.clone(),
                    snapshots: vec![safety_id.clone()],
                    token: format!("{token}:undo"),
                }
            };
            let done = transfer::restore_device(
                endpoints,
                store,
                progress.as_ref(),
                item.copy,
                target,
                false,
            )
            .await?;
            let detail = format!(
                "{mount}: wrote {} from copy {}",
                crate::units::format_size(done.bytes_written),
                item.copy.copy
            );
            Ok(Done::new(done, detail).undo(vec![undo]))
        })
        .await?
    };

    if was_on {
        ctx.step("power-on", |_| {
            steps::set_power(endpoints, &vm.endpoint, &vm_ref, &vm.name, true)
        })
        .await?;
    }

    ctx.step("release-safety-snapshot", |_| async {
        let release = if is_lun {
            Undo::DeleteLunSnapshot {
                endpoint: array.clone(),
                snapshot: safety_id.clone(),
            }
        } else {
            Undo::DeleteDiskSnapshot {
                endpoint: vm.endpoint.clone(),
                vm_ref: vm_ref.clone(),
                snapshot: safety_id.clone(),
            }
        };
        release.run(catalog, endpoints, None).await?;
        Ok(Done::new(
            (),
            format!("released safety snapshot {safety_id}"),
        ))
    })
    .await?;
    Ok(json!({
        "vm": vm.name,
        "recovery_point": point.id,
        "mount_point": mount,
        "bytes_written": restored.bytes_written,
    }))
}
