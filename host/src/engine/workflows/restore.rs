//! The `restore` workflow: a recovery point rebuilt as a new machine from its copies
//! alone (its snapshots may be long gone).
//!
//! check-copies → create-vm (on the chosen host, with a new virtual disk per disk) →
//! create-luns@ARRAY (a new LUN per mapped LUN) → restore-device MOUNT (one per device) →
//! expose-luns@ARRAY → map-luns (each new LUN mapped **as a virtual mapping at its original
//! mount point**) → power-on → record-vm. Compensation deletes the new VM and LUNs.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocks::{self, ByKind};
use crate::catalog::{CopyRefRecord, PointRecord, SnapshotRefRecord, VmRecord};
use crate::engine::device_io::DeviceTarget;
use crate::engine::discover::vm_record;
use crate::engine::jobs::workflow::{Services, StoreUse, Workflow};
use crate::engine::journal::{Done, StepCtx};
use crate::engine::transfer::{self, Restored};
use crate::engine::undo::Undo;
use crate::model::{
    DeviceBacking, DeviceSpec, LunMapping, MappedLun, MappingMode, NewDisk, VmInfo, VmSpec,
};
use crate::refusal::Refusal;

/// Restores a recovery point from its copies as a new VM.
pub struct Restore;

/// Arguments of a restore job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreArgs {
    /// The VM whose point is restored.
    pub vm: String,
    /// The recovery point to restore.
    pub point: String,
    /// The hypervisor host for the new VM.
    pub host: String,
    /// The new VM's name (default `<vm>-restored`).
    #[serde(default)]
    pub name: Option<String>,
    /// The array endpoint for the new LUNs (default: each LUN's original array).
    #[serde(default)]
    pub array: Option<String>,
}

impl RestoreArgs {
    fn new_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-restored", self.vm))
    }
}

#[async_trait]
impl Workflow for Restore {
    const KIND: &'static str = "restore";
    const STORE: StoreUse = StoreUse::Existing;
    type Args = RestoreArgs;
    type Inputs = (PointRecord, RestoreTarget);

    fn settle(args: RestoreArgs, _: &Services<'_>) -> anyhow::Result<RestoreArgs> {
        Ok(RestoreArgs {
            name: Some(args.new_name()),
            ..args
        })
    }

    fn subject(args: &RestoreArgs) -> &str {
        args.name.as_deref().unwrap_or(&args.vm)
    }

    fn load(args: &RestoreArgs, services: &Services<'_>) -> anyhow::Result<Self::Inputs> {
        let source = services.known_vm(&args.vm)?;
        let point = services.point_of(&args.vm, &args.point)?;
        let target = RestoreTarget {
            endpoint: source.endpoint,
            host: args.host.clone(),
            name: args.new_name(),
            array: args.array.clone(),
        };
        Ok((point, target))
    }

    fn check(
        _: &RestoreArgs,
        (point, target): &Self::Inputs,
        services: &Services<'_>,
    ) -> anyhow::Result<()> {
        check_restorable(point)?;
        crate::names::check_name("VM name", &target.name).map_err(Refusal::invalid)?;
        crate::names::check_name("host", &target.host).map_err(Refusal::invalid)?;
        if services.catalog.vm(&target.name)?.is_some() {
            return Err(Refusal::conflict(format!(
                "a VM named {} exists already; choose another name with --as",
                target.name
            )));
        }
        if let Some(array) = &target.array
            && !services.endpoints.storage_array_names().contains(array)
        {
            return Err(Refusal::invalid(format!(
                "unknown array endpoint '{array}' (see `tidemark endpoint list`)"
            )));
        }
        services.check_idle(&target.name)
    }

    async fn planned_steps(
        _: &RestoreArgs,
        (point, target): &Self::Inputs,
        _: &Services<'_>,
    ) -> anyhow::Result<Vec<String>> {
        let split = ByKind::of(&point.snapshots)?;
        let arrays: std::collections::BTreeSet<String> = split
            .luns
            .keys()
            .map(|a| target.array.clone().unwrap_or_else(|| a.to_string()))
            .collect();
        let mut steps = vec!["check-copies".to_string(), "create-vm".to_string()];
        steps.extend(arrays.iter().map(|a| format!("create-luns@{a}")));
        steps.extend(
            point
                .snapshots
                .iter()
                .map(|s| format!("restore-device {}", s.mount_point)),
        );
        steps.extend(arrays.iter().map(|a| format!("expose-luns@{a}")));
        if !arrays.is_empty() {
            steps.push("map-luns".into());
        }
        steps.push("power-on".into());
        steps.push("record-vm".into());
        Ok(steps)
    }

    async fn run(
        ctx: &mut StepCtx,
        _: &RestoreArgs,
        (point, target): &Self::Inputs,
    ) -> anyhow::Result<serde_json::Value> {
        run(ctx, point, target).await
    }
}

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
pub(super) struct Item<'a> {
    pub snapshot: &'a SnapshotRefRecord,
    pub copy: &'a CopyRefRecord,
}

/// The point's devices paired with their copies; an error names a device without one.
pub(super) fn items(point: &PointRecord) -> anyhow::Result<Vec<Item<'_>>> {
    point
        .snapshots
        .iter()
        .map(|s| {
            let copy = point.copy_of(&s.device_ref).ok_or_else(|| {
                Refusal::invalid(format!(
                    "recovery point {} has no copy of the device at {}; run `tidemark copy {} {}` first",
                    point.id,
                    s.mount_point,
                    point.vm_name,
                    point.id
                ))
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
async fn run(
    ctx: &mut StepCtx,
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

    let mut disks: Vec<&Item> = Vec::new();
    let mut luns: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    for item in &items {
        match item.snapshot.device()? {
            crate::model::Device::MappedLun { .. } => {
                let array = target
                    .array
                    .clone()
                    .unwrap_or_else(|| item.snapshot.endpoint.clone());
                luns.entry(array).or_default().push(item);
            }
            crate::model::Device::VirtualDisk { .. } => disks.push(item),
        }
    }

    let created: VmInfo = {
        let disks = &disks;
        ctx.step("create-vm", |step| async move {
            let spec = VmSpec {
                hardware: Default::default(),
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
                .create_vm(&spec, step.token())
                .await?;
            step.made(Undo::DeleteVm {
                endpoint: hv_endpoint.to_string(),
                vm_ref: info.id.clone(),
            });
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
            Ok(Done::new(info, detail))
        })
        .await?
    };

    let mut new_luns: BTreeMap<String, NewLun> = BTreeMap::new();
    for (array, group) in &luns {
        let made: BTreeMap<String, NewLun> = ctx
            .step(&format!("create-luns@{array}"), |step| async move {
                let mut sa = endpoints.storage_array(array).await?;
                let mut out = BTreeMap::new();
                for item in group {
                    let name = format!("{}-{}", target.name, item.snapshot.device_ref);
                    let info = sa
                        .create_lun(&name, item.copy.size, &step.token_for(&item.snapshot.device_ref))
                        .await?;
                    step.made(Undo::DeleteLun {
                        endpoint: array.clone(),
                        wwn: info.wwn.clone(),
                        exposed_to: vec![target.host.clone()],
                    });
                    if info.capacity < item.copy.size {
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
                Ok(Done::new(out, detail))
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
        ctx.step(&format!("expose-luns@{array}"), |step| async move {
            let mut sa = endpoints.storage_array(array).await?;
            for lun in group {
                sa.expose(&lun.wwn, &target.host).await?;
                step.made(Undo::Unexpose {
                    endpoint: array.to_string(),
                    wwn: lun.wwn.clone(),
                    host: target.host.clone(),
                });
            }
            Ok(Done::new(
                (),
                format!("exposed {} LUN(s) to {}", group.len(), target.host),
            ))
        })
        .await?;
    }

    if !new_luns.is_empty() {
        let (new_luns, luns, created) = (&new_luns, &luns, &created);
        ctx.step("map-luns", |step| async move {
            let mut hv = endpoints.hypervisor(hv_endpoint).await?;
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
                let result = hv
                    .map_lun(
                        &created.id,
                        &mapping,
                        &step.token_for(&item.snapshot.device_ref),
                    )
                    .await;
                super::copy::checked_mount(
                    result,
                    &item.snapshot.mount_point,
                    hv_endpoint,
                    |_| {
                        step.made(Undo::UnmapLun {
                            endpoint: hv_endpoint.to_string(),
                            vm_ref: created.id.clone(),
                            wwn: lun.wwn.clone(),
                        })
                    },
                )?;
                let original = item.snapshot.device()?;
                lines.push(format!(
                    "LUN {} mapped as virtual at {} (was {} LUN {})",
                    lun.wwn,
                    item.snapshot.mount_point,
                    original.mode().map_or("?", |m| m.as_str()),
                    original.wwn().unwrap_or("?")
                ));
            }
            Ok(Done::new((), lines.join("; ")))
        })
        .await?;
    }

    {
        let created = &created;
        ctx.step("power-on", |step| async move {
            blocks::set_power(
                endpoints,
                &step,
                hv_endpoint,
                &created.id,
                &target.name,
                true,
            )
            .await
        })
        .await?;
    }

    {
        let (created, new_luns) = (&created, &new_luns);
        ctx.step("record-vm", |step| async move {
            let info = endpoints
                .hypervisor(hv_endpoint)
                .await?
                .get_vm(&created.id)
                .await?;
            crate::engine::discover::validate_vm(hv_endpoint, &info)?;
            for lun in new_luns.values() {
                catalog.set_lun_owner(&lun.wwn, &lun.array)?;
            }
            catalog.upsert_vm(&vm_record(&target.name, hv_endpoint, &info))?;
            step.made(Undo::ForgetVm {
                name: target.name.clone(),
            });
            Ok(Done::new(
                (),
                format!("VM {} recorded in the catalog", target.name),
            ))
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
