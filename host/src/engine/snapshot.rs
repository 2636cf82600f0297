//! The `snapshot` workflow: discover → snapshot virtual disks through the hypervisor →
//! snapshot every mapped LUN through the array that owns it (one group call per array) →
//! record one recovery point. Compensation deletes whatever snapshots were taken.

use std::collections::BTreeMap;

use serde_json::json;

use super::discover::{Discovered, discover};
use super::journal::{Done, JobCtx};
use super::steps::{self, Taken};
use super::undo::Undo;
use crate::catalog::{MAPPED_LUN, PointRecord, SnapshotRefRecord, VIRTUAL_DISK, VmRecord};
use crate::contract::DeviceBacking;

/// Runs (or resumes) a snapshot job of `vm`; returns the job's result document.
pub async fn run(ctx: &mut JobCtx, vm: &VmRecord) -> anyhow::Result<serde_json::Value> {
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
            .step("snapshot-virtual-disks", |token| async move {
                let label = "virtual disk snapshot(s)";
                steps::snapshot_disks(endpoints, &vm.endpoint, &found.vm.id, ids, &token, label)
                    .await
            })
            .await?;
        for d in &disks {
            let s = &snaps[&d.id];
            refs.push(SnapshotRefRecord {
                device_ref: d.id.clone(),
                mount_point: d.mount_point.clone(),
                device_kind: VIRTUAL_DISK.into(),
                wwn: None,
                mode: None,
                endpoint: vm.endpoint.clone(),
                snapshot: s.id.clone(),
                created_at: s.created_at as i64,
                expired_at: None,
            });
        }
    }

    // Group mapped LUNs by owning array: one consistency-group call per array.
    let mut by_array: BTreeMap<&str, Vec<&crate::contract::Device>> = BTreeMap::new();
    for d in &found.vm.devices {
        if let DeviceBacking::MappedLun(lun) = &d.backing {
            by_array
                .entry(found.lun_owners[&lun.wwn].as_str())
                .or_default()
                .push(d);
        }
    }
    for (array, devices) in by_array {
        let wwns: Vec<String> = devices
            .iter()
            .filter_map(|d| match &d.backing {
                DeviceBacking::MappedLun(l) => Some(l.wwn.clone()),
                DeviceBacking::VirtualDisk(_) => None,
            })
            .collect();
        let wwns = &wwns;
        let snaps: Taken = ctx
            .step(&format!("snapshot-luns@{array}"), |token| async move {
                steps::snapshot_luns(endpoints, array, wwns, &token, "LUN snapshot(s)").await
            })
            .await?;
        for d in devices {
            let DeviceBacking::MappedLun(lun) = &d.backing else {
                continue;
            };
            let s = &snaps[&lun.wwn];
            refs.push(SnapshotRefRecord {
                device_ref: d.id.clone(),
                mount_point: d.mount_point.clone(),
                device_kind: MAPPED_LUN.into(),
                wwn: Some(lun.wwn.clone()),
                mode: Some(lun.mode.to_string()),
                endpoint: array.to_string(),
                snapshot: s.id.clone(),
                created_at: s.created_at as i64,
                expired_at: None,
            });
        }
    }

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
    ctx.step("record-point", |_| async {
        catalog.insert_point(&point)?;
        let detail = format!(
            "recovery point {} of {} with {} snapshot(s)",
            point.id,
            vm.name,
            point.snapshots.len()
        );
        Ok(Done::new((), detail).undo(vec![Undo::DeletePoint {
            id: point.id.clone(),
        }]))
    })
    .await?;
    Ok(json!({ "recovery_point": point_id, "vm": vm.name, "snapshots": point.snapshots.len() }))
}
