//! The `revert` workflow, in place: discover → power off → safety snapshots (so the revert
//! itself can be undone) → revert virtual disks → revert LUNs → power on if it was on →
//! release the safety snapshots. Compensation puts every device back as it was.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::json;

use super::discover::{Discovered, discover};
use super::journal::{Done, JobCtx};
use super::steps::{self, Taken};
use super::undo::Undo;
use crate::catalog::{MAPPED_LUN, PointRecord, VIRTUAL_DISK, VmRecord};
use crate::contract::{DeviceBacking, PowerState};

/// Runs (or resumes) a revert of `vm` to `point`; returns the job's result document.
pub async fn run(
    ctx: &mut JobCtx,
    vm: &VmRecord,
    point: &PointRecord,
) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let found: Discovered = ctx
        .step("discover", |_| async {
            let found = discover(catalog, endpoints, vm).await?;
            for s in &point.snapshots {
                let same = found.vm.devices.iter().any(|d| {
                    d.id == s.device_ref
                        && d.mount_point == s.mount_point
                        && match &d.backing {
                            DeviceBacking::VirtualDisk(_) => s.device_kind == VIRTUAL_DISK,
                            DeviceBacking::MappedLun(l) => s.device_kind == MAPPED_LUN && s.wwn.as_deref() == Some(l.wwn.as_str()),
                        }
                });
                if !same {
                    bail!(
                        "VM {} no longer has the device {} at {} that point {} holds; revert would not restore it",
                        vm.name, s.device_ref, s.mount_point, point.id
                    );
                }
            }
            let detail = format!("VM {} is powered {}", vm.name, found.vm.power);
            Ok(Done::new(found, detail))
        })
        .await?;
    let was_on = found.vm.power == PowerState::On;
    let vm_ref = found.vm.id.clone();

    if was_on {
        ctx.step("power-off", |_| {
            steps::set_power(endpoints, &vm.endpoint, &vm_ref, &vm.name, false)
        })
        .await?;
    }

    let disk_refs: Vec<_> = point
        .snapshots
        .iter()
        .filter(|s| s.device_kind == VIRTUAL_DISK)
        .collect();
    let mut lun_refs: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for s in point
        .snapshots
        .iter()
        .filter(|s| s.device_kind == MAPPED_LUN)
    {
        lun_refs.entry(s.endpoint.as_str()).or_default().push(s);
    }

    // Safety snapshots: what each device holds now, so a failed revert can be undone.
    let disk_ids: Vec<String> = disk_refs.iter().map(|s| s.device_ref.clone()).collect();
    let mut disk_safety: Taken = BTreeMap::new();
    let (vm_ref, disk_ids_ref) = (&vm_ref, &disk_ids);
    if !disk_ids.is_empty() {
        disk_safety = ctx
            .step("safety-snapshot-virtual-disks", |token| async move {
                let label = "safety snapshot(s) of virtual disks";
                steps::snapshot_disks(endpoints, &vm.endpoint, vm_ref, disk_ids_ref, &token, label)
                    .await
            })
            .await?;
    }
    let mut lun_safety: BTreeMap<String, Taken> = BTreeMap::new();
    for (array, refs) in &lun_refs {
        let wwns: Vec<String> = refs.iter().filter_map(|s| s.wwn.clone()).collect();
        let wwns = &wwns;
        let safety = ctx
            .step(
                &format!("safety-snapshot-luns@{array}"),
                |token| async move {
                    steps::snapshot_luns(
                        endpoints,
                        array,
                        wwns,
                        &token,
                        "safety snapshot(s) of LUNs",
                    )
                    .await
                },
            )
            .await?;
        lun_safety.insert(array.to_string(), safety);
    }

    if !disk_refs.is_empty() {
        let targets: Vec<String> = disk_refs.iter().map(|s| s.snapshot.clone()).collect();
        let (targets, disk_safety, disk_refs) = (&targets, &disk_safety, &disk_refs);
        ctx.step("revert-virtual-disks", |token| async move {
            endpoints
                .hypervisor(&vm.endpoint)
                .await?
                .revert_disks(vm_ref, targets, &token)
                .await?;
            let back: Vec<String> = disk_ids_ref
                .iter()
                .map(|d| disk_safety[d].id.clone())
                .collect();
            let mounts: Vec<&str> = disk_refs.iter().map(|s| s.mount_point.as_str()).collect();
            Ok(Done::new(
                (),
                format!(
                    "reverted virtual disk(s) {} to point {}",
                    mounts.join(", "),
                    point.id
                ),
            )
            .undo(vec![Undo::RevertDisks {
                endpoint: vm.endpoint.clone(),
                vm_ref: vm_ref.clone(),
                snapshots: back,
                token: format!("{token}:undo"),
            }]))
        })
        .await?;
    }
    let lun_safety_ref = &lun_safety;
    for (array, refs) in &lun_refs {
        ctx.step(&format!("revert-luns@{array}"), |token| async move {
            let mut sa = endpoints.storage_array(array).await?;
            let mut undo = Vec::new();
            for s in refs {
                let wwn = s.wwn.clone().unwrap_or_default();
                sa.revert_lun(&wwn, &s.snapshot, &format!("{token}:{wwn}"))
                    .await?;
                undo.push(Undo::RevertLun {
                    endpoint: array.to_string(),
                    snapshot: lun_safety_ref[*array][&wwn].id.clone(),
                    token: format!("{token}:{wwn}:undo"),
                    wwn,
                });
            }
            let mounts: Vec<&str> = refs.iter().map(|s| s.mount_point.as_str()).collect();
            Ok(Done::new(
                (),
                format!(
                    "reverted LUN(s) at {} on array {array} to point {}",
                    mounts.join(", "),
                    point.id
                ),
            )
            .undo(undo))
        })
        .await?;
    }

    if was_on {
        ctx.step("power-on", |_| {
            steps::set_power(endpoints, &vm.endpoint, vm_ref, &vm.name, true)
        })
        .await?;
    }

    ctx.step("release-safety-snapshots", |_| async {
        let mut released = 0;
        for s in disk_safety.values() {
            Undo::DeleteDiskSnapshot {
                endpoint: vm.endpoint.clone(),
                vm_ref: vm_ref.clone(),
                snapshot: s.id.clone(),
            }
            .run(catalog, endpoints, None)
            .await?;
            released += 1;
        }
        for (array, safety) in &lun_safety {
            for s in safety.values() {
                Undo::DeleteLunSnapshot {
                    endpoint: array.clone(),
                    snapshot: s.id.clone(),
                }
                .run(catalog, endpoints, None)
                .await?;
                released += 1;
            }
        }
        Ok(Done::new(
            (),
            format!("released {released} safety snapshot(s)"),
        ))
    })
    .await?;
    Ok(json!({ "vm": vm.name, "recovery_point": point.id, "powered_on": was_on }))
}
