//! The `revert` workflow, in place: discover → power off → safety snapshots (so the revert
//! itself can be undone) → revert virtual disks → revert LUNs → power on if it was on →
//! release the safety snapshots. Compensation puts every device back as it was.

use std::collections::BTreeMap;

use anyhow::bail;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocks::{self, ByKind, PowerCycle, Taken};
use crate::catalog::{PointRecord, VmRecord};
use crate::engine::discover::{Discovered, discover};
use crate::engine::jobs::workflow::{Services, Workflow};
use crate::engine::journal::{Done, StepCtx};
use crate::engine::undo::Undo;
use crate::model::Device;
use crate::model::{DeviceBacking, PowerState};
use crate::refusal::Refusal;

/// Reverts a VM in place to one of its recovery points.
pub struct Revert;

/// Arguments of a revert job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertArgs {
    /// The VM to revert.
    pub vm: String,
    /// The recovery point to revert it to.
    pub point: String,
}

#[async_trait]
impl Workflow for Revert {
    const KIND: &'static str = "revert";
    type Args = RevertArgs;
    type Inputs = (VmRecord, PointRecord);

    fn subject(args: &RevertArgs) -> &str {
        &args.vm
    }

    fn load(args: &RevertArgs, services: &Services<'_>) -> anyhow::Result<Self::Inputs> {
        services.vm_and_point(&args.vm, &args.point)
    }

    fn check(
        args: &RevertArgs,
        (_, point): &Self::Inputs,
        services: &Services<'_>,
    ) -> anyhow::Result<()> {
        if !point.snapshots_present() {
            return Err(Refusal::invalid(format!(
                "recovery point {} cannot be reverted: its snapshots were deleted by expiry; {}",
                point.id,
                if point.copies.is_empty() {
                    "it has no copies either".to_string()
                } else {
                    format!(
                        "restore it from its copies instead (`tidemark restore {} {} --host HOST`)",
                        args.vm, point.id
                    )
                }
            )));
        }
        services.check_idle(&args.vm)
    }

    async fn planned_steps(
        _: &RevertArgs,
        (vm, point): &Self::Inputs,
        _: &Services<'_>,
    ) -> anyhow::Result<Vec<String>> {
        let split = ByKind::of(&point.snapshots)?;
        let (before, after) = PowerCycle::planned(vm.power == PowerState::On.to_string());
        let mut steps = vec!["discover".to_string()];
        steps.extend(before);
        if !split.disks.is_empty() {
            steps.push("safety-snapshot-virtual-disks".into());
        }
        steps.extend(
            split
                .luns
                .keys()
                .map(|a| format!("safety-snapshot-luns@{a}")),
        );
        if !split.disks.is_empty() {
            steps.push("revert-virtual-disks".into());
        }
        steps.extend(split.luns.keys().map(|a| format!("revert-luns@{a}")));
        steps.extend(after);
        steps.push("release-safety-snapshots".into());
        Ok(steps)
    }

    async fn run(
        ctx: &mut StepCtx,
        _: &RevertArgs,
        (vm, point): &Self::Inputs,
    ) -> anyhow::Result<serde_json::Value> {
        run(ctx, vm, point).await
    }
}

/// Whether the VM still has, at the same mount point, every device the point holds.
fn check_devices_unchanged(
    vm: &VmRecord,
    found: &Discovered,
    point: &PointRecord,
) -> anyhow::Result<()> {
    for s in &point.snapshots {
        let held = s.device()?;
        let same = found.vm.devices.iter().any(|d| {
            d.id == s.device_ref
                && d.mount_point == s.mount_point
                && match (&d.backing, &held) {
                    (DeviceBacking::VirtualDisk(_), Device::VirtualDisk { .. }) => true,
                    (DeviceBacking::MappedLun(l), Device::MappedLun { wwn, .. }) => l.wwn == *wwn,
                    _ => false,
                }
        });
        if !same {
            bail!(
                "VM {} no longer has the device {} at {} that point {} holds; revert would not restore it",
                vm.name,
                s.device_ref,
                s.mount_point,
                point.id
            );
        }
    }
    Ok(())
}

async fn run(
    ctx: &mut StepCtx,
    vm: &VmRecord,
    point: &PointRecord,
) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let found: Discovered = ctx
        .step("discover", |_| async {
            let found = discover(catalog, endpoints, vm).await?;
            check_devices_unchanged(vm, &found, point)?;
            let detail = format!("VM {} is powered {}", vm.name, found.vm.power);
            Ok(Done::new(found, detail))
        })
        .await?;
    let vm_ref = found.vm.id.clone();
    let power = PowerCycle {
        endpoint: &vm.endpoint,
        vm_ref: &vm_ref,
        vm_name: &vm.name,
        was_on: found.vm.power == PowerState::On,
    };
    power.off(ctx).await?;

    let split = ByKind::of(&point.snapshots)?;

    // Safety snapshots: what each device holds now, so a failed revert can be undone.
    let disk_ids: Vec<String> = split.disks.iter().map(|s| s.device_ref.clone()).collect();
    let mut disk_safety: Taken = BTreeMap::new();
    let (vm_ref, disk_ids_ref) = (&vm_ref, &disk_ids);
    if !disk_ids.is_empty() {
        disk_safety = ctx
            .step("safety-snapshot-virtual-disks", |step| async move {
                let label = "safety snapshot(s) of virtual disks";
                blocks::snapshot_disks(endpoints, &step, &vm.endpoint, vm_ref, disk_ids_ref, label)
                    .await
            })
            .await?;
    }
    let mut lun_safety: BTreeMap<String, Taken> = BTreeMap::new();
    for (array, refs) in &split.luns {
        let wwns: Vec<String> = refs.iter().filter_map(|s| s.wwn.clone()).collect();
        let wwns = &wwns;
        let safety = ctx
            .step(
                &format!("safety-snapshot-luns@{array}"),
                |step| async move {
                    let label = "safety snapshot(s) of LUNs";
                    blocks::snapshot_luns(endpoints, &step, array, wwns, label).await
                },
            )
            .await?;
        lun_safety.insert(array.to_string(), safety);
    }

    if !split.disks.is_empty() {
        let targets: Vec<String> = split.disks.iter().map(|s| s.snapshot.clone()).collect();
        let (targets, disk_safety, disks) = (&targets, &disk_safety, &split.disks);
        ctx.step("revert-virtual-disks", |step| async move {
            let back: Vec<String> = disk_ids_ref
                .iter()
                .map(|d| disk_safety[d].id.clone())
                .collect();
            // Recorded first: a revert that fails halfway is put back all the same.
            step.made(Undo::RevertDisks {
                endpoint: vm.endpoint.clone(),
                vm_ref: vm_ref.clone(),
                snapshots: back,
                token: format!("{}:undo", step.token()),
            });
            endpoints
                .hypervisor(&vm.endpoint)
                .await?
                .revert_disks(vm_ref, targets, step.token())
                .await?;
            let mounts: Vec<&str> = disks.iter().map(|s| s.mount_point.as_str()).collect();
            Ok(Done::new(
                (),
                format!(
                    "reverted virtual disk(s) {} to point {}",
                    mounts.join(", "),
                    point.id
                ),
            ))
        })
        .await?;
    }
    let lun_safety_ref = &lun_safety;
    for (array, refs) in &split.luns {
        ctx.step(&format!("revert-luns@{array}"), |step| async move {
            let mut sa = endpoints.storage_array(array).await?;
            for s in refs {
                let wwn = s.device()?.wwn().unwrap_or_default().to_string();
                step.made(Undo::RevertLun {
                    endpoint: array.to_string(),
                    snapshot: lun_safety_ref[*array][&wwn].id.clone(),
                    token: format!("{}:{wwn}:undo", step.token()),
                    wwn: wwn.clone(),
                });
                sa.revert_lun(&wwn, &s.snapshot, &format!("{}:{wwn}", step.token()))
                    .await?;
            }
            let mounts: Vec<&str> = refs.iter().map(|s| s.mount_point.as_str()).collect();
            Ok(Done::new(
                (),
                format!(
                    "reverted LUN(s) at {} on array {array} to point {}",
                    mounts.join(", "),
                    point.id
                ),
            ))
        })
        .await?;
    }

    power.back_on(ctx).await?;

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
    Ok(json!({ "vm": vm.name, "recovery_point": point.id, "powered_on": power.was_on }))
}
