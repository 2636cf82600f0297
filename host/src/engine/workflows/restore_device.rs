//! The `restore-device` workflow: one device of a VM restored in place from a point's copy
//! (also how a LUN whose snapshot is gone is put back from its copy).
//!
//! discover → power-off (if on) → safety-snapshot → restore-device MOUNT → power-on →
//! release-safety-snapshot. The safety snapshot puts the device back if anything fails,
//! including a damaged chunk found while writing (every chunk is authenticated before it
//! is written), so there is no separate pre-read of the copy: it would read the whole copy
//! twice and cost the restore its speed.

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocks::{self, PowerCycle};
use super::restore::items;
use crate::catalog::{PointRecord, VmRecord};
use crate::engine::device_io::DeviceTarget;
use crate::engine::discover::{Discovered, discover};
use crate::engine::jobs::workflow::{Services, StoreUse, Workflow};
use crate::engine::journal::{Done, StepCtx};
use crate::engine::transfer::{self, Restored};
use crate::engine::undo::Undo;
use crate::model::Device;
use crate::model::{DeviceBacking, PowerState};
use crate::refusal::Refusal;

/// Restores one device of a VM in place from a point's copy.
pub struct RestoreDevice;

/// Arguments of a restore-device job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreDeviceArgs {
    /// The VM whose device is restored.
    pub vm: String,
    /// The recovery point whose copy is written back.
    pub point: String,
    /// The device's mount point, e.g. `D:` or `/data`.
    pub device: String,
}

#[async_trait]
impl Workflow for RestoreDevice {
    const KIND: &'static str = "restore-device";
    const STORE: StoreUse = StoreUse::Existing;
    type Args = RestoreDeviceArgs;
    type Inputs = (VmRecord, PointRecord);

    fn subject(args: &RestoreDeviceArgs) -> &str {
        &args.vm
    }

    fn load(args: &RestoreDeviceArgs, services: &Services<'_>) -> anyhow::Result<Self::Inputs> {
        services.vm_and_point(&args.vm, &args.point)
    }

    fn check(
        args: &RestoreDeviceArgs,
        (_, point): &Self::Inputs,
        services: &Services<'_>,
    ) -> anyhow::Result<()> {
        let mount = &args.device;
        let device = point
            .snapshots
            .iter()
            .find(|s| &s.mount_point == mount)
            .ok_or_else(|| {
                Refusal::invalid(format!(
                    "recovery point {} has no device at {mount}",
                    point.id
                ))
            })?;
        if point.copy_of(&device.device_ref).is_none() {
            return Err(Refusal::invalid(format!(
                "recovery point {} has no copy of the device at {mount}; run `tidemark copy {} {}` first",
                point.id, args.vm, point.id
            )));
        }
        services.check_idle(&args.vm)
    }

    async fn planned_steps(
        args: &RestoreDeviceArgs,
        (vm, _): &Self::Inputs,
        _: &Services<'_>,
    ) -> anyhow::Result<Vec<String>> {
        let (before, after) = PowerCycle::planned(vm.power == PowerState::On.to_string());
        let mut steps = vec!["discover".to_string()];
        steps.extend(before);
        steps.push("safety-snapshot".into());
        steps.push(format!("restore-device {}", args.device));
        steps.extend(after);
        steps.push("release-safety-snapshot".into());
        Ok(steps)
    }

    async fn run(
        ctx: &mut StepCtx,
        args: &RestoreDeviceArgs,
        (vm, point): &Self::Inputs,
    ) -> anyhow::Result<serde_json::Value> {
        run(ctx, vm, point, &args.device).await
    }
}

/// Runs (or resumes) a restore of the device at `mount` of `vm` from `point`'s copy.
async fn run(
    ctx: &mut StepCtx,
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

    let held = s.device()?;
    let found: Discovered = ctx
        .step("discover", |_| async {
            let found = discover(catalog, endpoints, vm).await?;
            let device = found
                .vm
                .devices
                .iter()
                .find(|d| d.mount_point == mount)
                .ok_or_else(|| anyhow!("VM {} has no device at {mount} any more", vm.name))?;
            let same = match (&device.backing, &held) {
                (DeviceBacking::VirtualDisk(_), Device::VirtualDisk { id }) => device.id == *id,
                (DeviceBacking::MappedLun(l), Device::MappedLun { wwn, .. }) => l.wwn == *wwn,
                _ => false,
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
    let vm_ref = found.vm.id.clone();
    let (is_lun, wwn) = match &held {
        Device::MappedLun { wwn, .. } => (true, wwn.clone()),
        Device::VirtualDisk { .. } => (false, String::new()),
    };
    let array = if is_lun {
        found
            .lun_owners
            .get(&wwn)
            .cloned()
            .ok_or_else(|| anyhow!("no array owns LUN {wwn} of VM {}", vm.name))?
    } else {
        String::new()
    };
    let power = PowerCycle {
        endpoint: &vm.endpoint,
        vm_ref: &vm_ref,
        vm_name: &vm.name,
        was_on: found.vm.power == PowerState::On,
    };
    power.off(ctx).await?;

    let safety: blocks::Taken = {
        let (vm_ref, wwn, array) = (&vm_ref, &wwn, &array);
        ctx.step("safety-snapshot", |step| async move {
            if is_lun {
                let label = "safety snapshot of the LUN";
                blocks::snapshot_luns(endpoints, &step, array, std::slice::from_ref(wwn), label)
                    .await
            } else {
                let ids = [s.device_ref.clone()];
                let label = "safety snapshot of the disk";
                blocks::snapshot_disks(endpoints, &step, &vm.endpoint, vm_ref, &ids, label).await
            }
        })
        .await?
    };
    let safety_id = safety
        .values()
        .next()
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow!("no safety snapshot was taken"))?;

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
        ctx.step(&format!("restore-device {mount}"), |step| async move {
            // Recorded before a byte is written: a restore that fails halfway is put back.
            let token = format!("{}:undo", step.token());
            step.made(if is_lun {
                Undo::RevertLun {
                    endpoint: array.clone(),
                    wwn: wwn.clone(),
                    snapshot: safety_id.clone(),
                    token,
                }
            } else {
                Undo::RevertDisks {
                    endpoint: vm.endpoint.clone(),
                    vm_ref: vm_ref.clone(),
                    snapshots: vec![safety_id.clone()],
                    token,
                }
            });
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
            Ok(Done::new(done, detail))
        })
        .await?
    };

    power.back_on(ctx).await?;

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
