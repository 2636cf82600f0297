//! The `snapshot` workflow: discover → (a running VM: hold-writes) → snapshot virtual
//! disks through the hypervisor → snapshot every mapped LUN through the array that owns it
//! (one group call per array) → (release-writes) → record one recovery point.
//! Compensation deletes whatever snapshots were taken and lets the guest write again.
//!
//! Holding a running guest's writes (the hypervisor's `quiesce`; libvirt pauses the
//! domain) across the disk and the LUN snapshots makes the point consistent across
//! hypervisor and array; a hypervisor that cannot answers `unsupported` and the point is
//! consistent per device only. release-writes reports how long the writes were held and
//! how far apart the snapshots' instants are (the skew), in its detail and the job's
//! result.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocks::{self, Taken};
use crate::catalog::{PointRecord, SnapshotRefRecord, VmRecord};
use crate::engine::discover::{Discovered, discover};
use crate::engine::jobs::workflow::{Services, Workflow};
use crate::engine::journal::{Done, StepCtx};
use crate::engine::undo::Undo;
use crate::model::Device;
use crate::model::DeviceBacking;

/// Snapshots every device of a VM into one recovery point.
pub struct Snapshot;

/// The steps around the snapshots of a running VM.
const HOLD: &str = "hold-writes";
const RELEASE: &str = "release-writes";

/// Arguments of a snapshot job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotArgs {
    /// The VM to snapshot.
    pub vm: String,
}

#[async_trait]
impl Workflow for Snapshot {
    const KIND: &'static str = "snapshot";
    type Args = SnapshotArgs;
    type Inputs = VmRecord;

    fn subject(args: &SnapshotArgs) -> &str {
        &args.vm
    }

    fn load(args: &SnapshotArgs, services: &Services<'_>) -> anyhow::Result<VmRecord> {
        services.known_vm(&args.vm)
    }

    fn check(args: &SnapshotArgs, _: &VmRecord, services: &Services<'_>) -> anyhow::Result<()> {
        services.check_idle(&args.vm)
    }

    async fn planned_steps(
        _: &SnapshotArgs,
        vm: &VmRecord,
        services: &Services<'_>,
    ) -> anyhow::Result<Vec<String>> {
        let mut steps = vec!["discover".to_string()];
        let running = vm.power == "on";
        if running {
            steps.push(HOLD.into());
        }
        let mut arrays = std::collections::BTreeSet::new();
        let mut disks = false;
        for d in &vm.devices {
            match d.device()? {
                Device::MappedLun { wwn, .. } => {
                    arrays.insert(services.lun_owner(&wwn).await?);
                }
                Device::VirtualDisk { .. } => disks = true,
            }
        }
        if disks {
            steps.push("snapshot-virtual-disks".into());
        }
        steps.extend(arrays.iter().map(|a| format!("snapshot-luns@{a}")));
        if running {
            steps.push(RELEASE.into());
        }
        steps.push("record-point".into());
        Ok(steps)
    }

    async fn run(
        ctx: &mut StepCtx,
        _: &SnapshotArgs,
        vm: &VmRecord,
    ) -> anyhow::Result<serde_json::Value> {
        run(ctx, vm).await
    }
}

async fn run(ctx: &mut StepCtx, vm: &VmRecord) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let found: Discovered = ctx
        .step("discover", |_| async {
            let found = discover(catalog, endpoints, vm).await?;
            let detail = format!(
                "VM {} on {} with {} device(s)",
                vm.name,
                found.vm.host_id,
                found.vm.devices.len()
            );
            Ok(Done::new(found, detail))
        })
        .await?;

    // Planned from the catalog's power state, so the plan and the journal agree.
    let running = vm.power == "on";
    let held: Option<i64> = if running {
        let found = &found;
        ctx.step(HOLD, |step| async move {
            let mut hv = endpoints.hypervisor(&vm.endpoint).await?;
            match hv.quiesce(&found.vm.id).await {
                Ok(()) => {
                    step.made(Undo::ReleaseWrites {
                        endpoint: vm.endpoint.clone(),
                        vm_ref: found.vm.id.clone(),
                    });
                    let detail = format!("writes of {} held", vm.name);
                    Ok(Done::new(Some(crate::catalog::now_ms()), detail))
                }
                Err(e) if e.is_unsupported() => {
                    let detail = format!("writes not held, each device consistent alone: {e}");
                    Ok(Done::new(None, detail))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await?
    } else {
        None
    };

    let mut refs: Vec<SnapshotRefRecord> = Vec::new();
    let disks: Vec<_> = found
        .vm
        .devices
        .iter()
        .filter(|d| matches!(d.backing, DeviceBacking::VirtualDisk(_)))
        .collect();
    if !disks.is_empty() {
        let ids: Vec<String> = disks.iter().map(|d| d.id.clone()).collect();
        let (ids, found) = (&ids, &found);
        let snaps: Taken = ctx
            .step("snapshot-virtual-disks", |step| async move {
                let label = "virtual disk snapshot(s)";
                blocks::snapshot_disks(endpoints, &step, &vm.endpoint, &found.vm.id, ids, label)
                    .await
            })
            .await?;
        for d in &disks {
            let device = Device::VirtualDisk { id: d.id.clone() };
            refs.push(SnapshotRefRecord::new(
                &d.id,
                &d.mount_point,
                &device,
                &vm.endpoint,
                &snaps[&d.id],
            ));
        }
    }

    // Group mapped LUNs by owning array: one consistency-group call per array.
    let mut by_array: BTreeMap<&str, Vec<(&crate::model::VmDevice, Device)>> = BTreeMap::new();
    for d in &found.vm.devices {
        if let DeviceBacking::MappedLun(lun) = &d.backing {
            let device = Device::MappedLun {
                wwn: lun.wwn.clone(),
                mode: lun.mode,
            };
            by_array
                .entry(found.lun_owners[&lun.wwn].as_str())
                .or_default()
                .push((d, device));
        }
    }
    for (array, devices) in by_array {
        let wwns: Vec<String> = devices
            .iter()
            .filter_map(|(_, device)| device.wwn().map(str::to_string))
            .collect();
        let wwns = &wwns;
        let snaps: Taken = ctx
            .step(&format!("snapshot-luns@{array}"), |step| async move {
                blocks::snapshot_luns(endpoints, &step, array, wwns, "LUN snapshot(s)").await
            })
            .await?;
        for (d, device) in &devices {
            let wwn = device.wwn().unwrap_or_default();
            refs.push(SnapshotRefRecord::new(
                &d.id,
                &d.mount_point,
                device,
                array,
                &snaps[wwn],
            ));
        }
    }

    let skew_ms = refs.iter().map(|r| r.created_at).max().unwrap_or(0)
        - refs.iter().map(|r| r.created_at).min().unwrap_or(0);
    let held_ms: Option<i64> = if running {
        let found = &found;
        ctx.step(RELEASE, |_| async move {
            let Some(since) = held else {
                let detail = format!("nothing held; the snapshots are {skew_ms} ms apart");
                return Ok(Done::new(None, detail));
            };
            let mut hv = endpoints.hypervisor(&vm.endpoint).await?;
            hv.unquiesce(&found.vm.id).await?;
            let ms = crate::catalog::now_ms() - since;
            let detail = format!(
                "writes of {} held for {ms} ms across the disk and LUN snapshots; the \
                 snapshots are {skew_ms} ms apart",
                vm.name
            );
            Ok(Done::new(Some(ms), detail))
        })
        .await?
    } else {
        None
    };

    let point_id = format!("rp-{}", ctx.job_id.trim_start_matches("job-"));
    let point = PointRecord {
        id: point_id.clone(),
        vm_name: vm.name.clone(),
        created_at: refs
            .iter()
            .map(|r| r.created_at)
            .min()
            .unwrap_or_else(crate::catalog::now_ms),
        job_id: ctx.job_id.clone(),
        snapshots: refs,
        copies: Vec::new(),
    };
    let point_ref = &point;
    ctx.step("record-point", |step| async move {
        let point = point_ref;
        catalog.insert_point(point)?;
        step.made(Undo::DeletePoint {
            id: point.id.clone(),
        });
        let detail = format!(
            "recovery point {} of {} with {} snapshot(s)",
            point.id,
            vm.name,
            point.snapshots.len()
        );
        Ok(Done::new((), detail))
    })
    .await?;
    Ok(json!({
        "recovery_point": point_id,
        "vm": vm.name,
        "snapshots": point.snapshots.len(),
        "writes_held_ms": held_ms,
        "skew_ms": skew_ms,
    }))
}
