//! The `copy` workflow: a recovery point's snapshots become copies in the copy store,
//! read through a proxy VM so nothing is installed in the protected VM.
//!
//! prepare-proxy (create or reuse the VM `tidemark-proxy-<vm>` on the proxy host) →
//! attach-virtual-disks (each disk snapshot, read-only, at its mount point) →
//! clone-luns@ARRAY (clone each LUN snapshot, expose the clone to the proxy host) →
//! map-clones (each clone mapped to the proxy VM **as a virtual mapping at the mount point
//! the original had**) → copy-device MOUNT (one per device: only what changed since the
//! device's previous copy) → teardown-proxy → record-copies.
//! Compensation removes attachments, mappings, clones and written copies.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocks::ByKind;
use crate::catalog::{CopyRefRecord, PointRecord, SnapshotRefRecord, VmRecord};
use crate::engine::copy_label::PointFacts;
use crate::engine::device_io::DeviceTarget;
use crate::engine::jobs::workflow::{Services, StoreUse, Workflow};
use crate::engine::journal::{Done, Step, StepCtx};
use crate::engine::ports::CallResult;
use crate::engine::transfer::{self, CopiedDevice, CopySource};
use crate::engine::undo::Undo;
use crate::model::{LunMapping, MappedLun, MappingMode, VmSpec};
use crate::refusal::Refusal;

/// The proxy hypervisor host copies use unless told otherwise.
pub const DEFAULT_PROXY_HOST: &str = "proxy-1";

/// Copies a recovery point's snapshots into the copy store through a proxy VM.
pub struct Copy;

/// Arguments of a copy job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyArgs {
    /// The VM whose point is copied.
    pub vm: String,
    /// The recovery point to copy.
    pub point: String,
    /// The proxy hypervisor host (default `proxy-1`).
    #[serde(default)]
    pub proxy_host: Option<String>,
}

impl CopyArgs {
    fn proxy_host(&self) -> &str {
        self.proxy_host.as_deref().unwrap_or(DEFAULT_PROXY_HOST)
    }
}

#[async_trait]
impl Workflow for Copy {
    const KIND: &'static str = "copy";
    const STORE: StoreUse = StoreUse::Create;
    type Args = CopyArgs;
    type Inputs = (VmRecord, PointRecord);

    fn settle(args: CopyArgs, _: &Services<'_>) -> anyhow::Result<CopyArgs> {
        Ok(CopyArgs {
            proxy_host: Some(args.proxy_host().to_string()),
            ..args
        })
    }

    fn subject(args: &CopyArgs) -> &str {
        &args.vm
    }

    fn load(args: &CopyArgs, services: &Services<'_>) -> anyhow::Result<Self::Inputs> {
        services.vm_and_point(&args.vm, &args.point)
    }

    fn check(
        args: &CopyArgs,
        (_, point): &Self::Inputs,
        services: &Services<'_>,
    ) -> anyhow::Result<()> {
        if !point.snapshots_present() {
            return Err(Refusal::invalid(format!(
                "recovery point {} cannot be copied: its snapshots were deleted by expiry",
                point.id
            )));
        }
        if point
            .snapshots
            .iter()
            .all(|s| point.copy_of(&s.device_ref).is_some())
        {
            return Err(Refusal::conflict(format!(
                "recovery point {} is copied already (see `tidemark copies {}`)",
                point.id, args.vm
            )));
        }
        crate::names::check_name("proxy host", args.proxy_host()).map_err(Refusal::invalid)?;
        services.check_idle(&args.vm)
    }

    async fn planned_steps(
        _: &CopyArgs,
        (_, point): &Self::Inputs,
        _: &Services<'_>,
    ) -> anyhow::Result<Vec<String>> {
        let split = ByKind::of(&point.snapshots)?;
        let mut steps = vec!["prepare-proxy".to_string()];
        if !split.disks.is_empty() {
            steps.push("attach-virtual-disks".into());
        }
        steps.extend(split.luns.keys().map(|a| format!("clone-luns@{a}")));
        if !split.luns.is_empty() {
            steps.push("map-clones".into());
        }
        steps.extend(
            point
                .snapshots
                .iter()
                .map(|s| format!("copy-device {}", s.mount_point)),
        );
        steps.push("teardown-proxy".into());
        steps.push("record-copies".into());
        Ok(steps)
    }

    async fn run(
        ctx: &mut StepCtx,
        args: &CopyArgs,
        (vm, point): &Self::Inputs,
    ) -> anyhow::Result<serde_json::Value> {
        run(ctx, vm, point, args.proxy_host()).await
    }
}

/// The name of the proxy VM that reads `vm`'s snapshots. One per protected VM, so
/// concurrent copies of different VMs never fight over mount points.
pub fn proxy_name(vm: &str) -> String {
    format!("{PROXY_PREFIX}{vm}")
}

/// Prefix of every proxy VM's name.
pub const PROXY_PREFIX: &str = "tidemark-proxy-";

/// The name of a LUN clone made for a copy job; `reconcile` recognises leftovers by it.
pub fn clone_name(job_id: &str, device_ref: &str) -> String {
    format!(
        "{CLONE_PREFIX}{}-{device_ref}",
        job_id.trim_start_matches("job-")
    )
}

/// Prefix of every clone name.
pub const CLONE_PREFIX: &str = "tidemark-clone-";

/// The proxy VM a copy job uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProxyVm {
    id: String,
    name: String,
    created: bool,
}

/// A LUN snapshot's clone, exposed to the proxy host.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LunClone {
    array: String,
    wwn: String,
    capacity: u64,
}

/// A clone as mapped to the proxy VM (what the job's steps show).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MappedClone {
    device_ref: String,
    clone_wwn: String,
    original_wwn: String,
    original_mode: String,
    mode: String,
    mount_point: String,
    proxy_device: String,
}

/// Runs (or resumes) a copy of `point` through a proxy VM on `proxy_host`.
async fn run(
    ctx: &mut StepCtx,
    vm: &VmRecord,
    point: &PointRecord,
    proxy_host: &str,
) -> anyhow::Result<serde_json::Value> {
    let (catalog_handle, endpoints_handle) = (ctx.catalog.clone(), ctx.endpoints.clone());
    let (catalog, endpoints) = (catalog_handle.as_ref(), endpoints_handle.as_ref());
    let store = ctx.copy_store()?;
    let progress = ctx.progress.clone();
    let job_id = ctx.job_id.clone();
    let hv_endpoint = vm.endpoint.as_str();

    let proxy: ProxyVm = ctx
        .step("prepare-proxy", |step| async move {
            let name = proxy_name(&vm.name);
            let mut hv = endpoints.hypervisor(hv_endpoint).await?;
            if let Some(existing) = hv.list_vms().await?.into_iter().find(|v| v.name == name) {
                if existing.host_id != proxy_host {
                    bail!(
                        "proxy VM {name} exists on host {}, not on {proxy_host}; use --proxy-host {} or delete it",
                        existing.host_id,
                        existing.host_id
                    );
                }
                if !existing.devices.is_empty() {
                    bail!(
                        "proxy VM {name} still has {} device(s) attached (a copy left unfinished?); \
                         run `tidemark resume`, or `tidemark reconcile` to see what is left",
                        existing.devices.len()
                    );
                }
                let detail = format!("reusing proxy VM {name} on {proxy_host}");
                return Ok(Done::new(ProxyVm { id: existing.id, name, created: false }, detail));
            }
            let spec = VmSpec { name: name.clone(), host_id: proxy_host.to_string(), devices: Vec::new(), hardware: Default::default() };
            let info = hv.create_vm(&spec, step.token()).await?;
            step.made(Undo::DeleteVm { endpoint: hv_endpoint.to_string(), vm_ref: info.id.clone() });
            let detail = format!("created proxy VM {name} ({}) on {proxy_host}", info.id);
            Ok(Done::new(ProxyVm { id: info.id, name, created: true }, detail))
        })
        .await?;

    let ByKind { disks, luns } = ByKind::of(&point.snapshots)?;

    // Virtual-disk snapshots, attached read-only to the proxy at their mount points.
    let mut attached: BTreeMap<String, String> = BTreeMap::new();
    if !disks.is_empty() {
        let (disks, proxy) = (&disks, &proxy);
        attached = ctx
            .step("attach-virtual-disks", |step| async move {
                let mut hv = endpoints.hypervisor(hv_endpoint).await?;
                let mut out = BTreeMap::new();
                for s in disks {
                    let result = hv
                        .attach_snapshot(
                            &proxy.id,
                            &vm.vm_ref,
                            &s.snapshot,
                            &s.mount_point,
                            &step.token_for(&s.device_ref),
                        )
                        .await;
                    let device = checked_mount(result, &s.mount_point, hv_endpoint, |id| {
                        step.made(Undo::DetachDisk {
                            endpoint: hv_endpoint.to_string(),
                            vm_ref: proxy.id.clone(),
                            device: id.to_string(),
                        })
                    })?;
                    out.insert(s.device_ref.clone(), device);
                }
                let detail = format!(
                    "attached {} disk snapshot(s) to proxy VM {} at {}",
                    out.len(),
                    proxy.name,
                    disks
                        .iter()
                        .map(|s| s.mount_point.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                Ok(Done::new(out, detail))
            })
            .await?;
    }

    // LUN snapshots: cloned on their array and exposed to the proxy host.
    let mut clones: BTreeMap<String, LunClone> = BTreeMap::new();
    for (array, refs) in &luns {
        let (array, refs, job_id) = (*array, refs, &job_id);
        let made: BTreeMap<String, LunClone> = ctx
            .step(&format!("clone-luns@{array}"), |step| async move {
                let mut sa = endpoints.storage_array(array).await?;
                let mut out = BTreeMap::new();
                for s in refs {
                    let clone = clone_one(sa.as_mut(), &step, array, s, proxy_host, job_id).await?;
                    out.insert(s.device_ref.clone(), clone);
                }
                let detail = format!(
                    "cloned {} LUN snapshot(s) on {array} and exposed the clones to {proxy_host}: {}",
                    out.len(),
                    out.values().map(|c: &LunClone| c.wwn.as_str()).collect::<Vec<_>>().join(", ")
                );
                Ok(Done::new(out, detail))
            })
            .await?;
        clones.extend(made);
    }

    // Each clone mapped to the proxy as a virtual mapping at the original mount point.
    let mut mapped: Vec<MappedClone> = Vec::new();
    if !clones.is_empty() {
        let (clones, proxy, luns) = (&clones, &proxy, &luns);
        mapped = ctx
            .step("map-clones", |step| async move {
                let mut hv = endpoints.hypervisor(hv_endpoint).await?;
                let mut out = Vec::new();
                for s in luns.values().flatten() {
                    let clone = &clones[&s.device_ref];
                    let mapping = LunMapping {
                        lun: MappedLun {
                            wwn: clone.wwn.clone(),
                            mode: MappingMode::Virtual,
                        },
                        capacity: clone.capacity,
                        mount_point: s.mount_point.clone(),
                    };
                    let result = hv
                        .map_lun(&proxy.id, &mapping, &step.token_for(&s.device_ref))
                        .await;
                    let device = checked_mount(result, &s.mount_point, hv_endpoint, |_| {
                        step.made(Undo::UnmapLun {
                            endpoint: hv_endpoint.to_string(),
                            vm_ref: proxy.id.clone(),
                            wwn: clone.wwn.clone(),
                        })
                    })?;
                    let original = s.device()?;
                    out.push(MappedClone {
                        device_ref: s.device_ref.clone(),
                        clone_wwn: clone.wwn.clone(),
                        original_wwn: original.wwn().unwrap_or_default().to_string(),
                        original_mode: original.mode().map(|m| m.to_string()).unwrap_or_default(),
                        mode: MappingMode::Virtual.to_string(),
                        mount_point: s.mount_point.clone(),
                        proxy_device: device,
                    });
                }
                let detail = out
                    .iter()
                    .map(|m| {
                        format!(
                            "clone {} of LUN {} ({}) mapped to proxy VM {} as virtual at {}",
                            m.clone_wwn, m.original_wwn, m.original_mode, proxy.name, m.mount_point
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                Ok(Done::new(out, detail))
            })
            .await?;
    }

    // Every device read through the proxy into the copy store.
    let mut copied: Vec<(String, CopiedDevice)> = Vec::new();
    for s in &point.snapshots {
        let source = CopySource {
            reader: match (attached.get(&s.device_ref), clones.get(&s.device_ref)) {
                (Some(proxy_device), _) => DeviceTarget::Disk {
                    endpoint: hv_endpoint.to_string(),
                    vm_ref: proxy.id.clone(),
                    device_ref: proxy_device.clone(),
                    capacity: vm
                        .devices
                        .iter()
                        .find(|d| d.device_ref == s.device_ref)
                        .map_or(0, |d| d.capacity),
                },
                (None, Some(clone)) => DeviceTarget::Lun {
                    endpoint: clone.array.clone(),
                    wwn: clone.wwn.clone(),
                    capacity: clone.capacity,
                },
                (None, None) => bail!(
                    "device {} of point {} was not presented to the proxy",
                    s.device_ref,
                    point.id
                ),
            },
            snapshot: s.clone(),
            facts: PointFacts::of(vm, point, &job_id),
            base: transfer::incremental_base(catalog, &vm.name, point, &s.device_ref)?,
            copy_id: format!("{}.{}", point.id, s.device_ref),
        };
        let (source, store, progress) = (&source, &store, &progress);
        let device: CopiedDevice = ctx
            .step(
                &format!("copy-device {}", s.mount_point),
                |step| async move {
                    let device =
                        transfer::copy_device(endpoints, store, progress.as_ref(), source).await?;
                    step.made(Undo::DeleteCopy {
                        copy: device.copy.clone(),
                    });
                    let detail = format!(
                        "{} {}: read {} of {}, stored {} new ({})",
                        source.snapshot.mount_point,
                        device.how,
                        crate::units::format_size(device.bytes_read),
                        crate::units::format_size(device.size),
                        crate::units::format_size(device.bytes_stored),
                        device.copy
                    );
                    Ok(Done::new(device, detail))
                },
            )
            .await?;
        copied.push((s.device_ref.clone(), device));
    }

    {
        let (proxy, mapped, clones, attached) = (&proxy, &mapped, &clones, &attached);
        ctx.step("teardown-proxy", |_| async move {
            // The same actions that undo the presenting steps (each treats "already gone"
            // as done), in the order the steps are undone.
            let mut teardown: Vec<Undo> = mapped
                .iter()
                .map(|m| Undo::UnmapLun {
                    endpoint: hv_endpoint.to_string(),
                    vm_ref: proxy.id.clone(),
                    wwn: m.clone_wwn.clone(),
                })
                .collect();
            teardown.extend(clones.values().map(|c| Undo::DeleteLun {
                endpoint: c.array.clone(),
                wwn: c.wwn.clone(),
                exposed_to: vec![proxy_host.to_string()],
            }));
            teardown.extend(attached.values().map(|device| Undo::DetachDisk {
                endpoint: hv_endpoint.to_string(),
                vm_ref: proxy.id.clone(),
                device: device.clone(),
            }));
            for action in &teardown {
                action.run(catalog, endpoints, None).await?;
            }
            let detail = format!(
                "unmapped {} clone(s), detached {} snapshot(s), deleted {} clone(s) from proxy VM {}",
                mapped.len(),
                attached.len(),
                clones.len(),
                proxy.name
            );
            Ok(Done::new((), detail))
        })
        .await?;
    }

    let refs: Vec<CopyRefRecord> = copied
        .iter()
        .map(|(device_ref, d)| CopyRefRecord {
            device_ref: device_ref.clone(),
            store: transfer::STORE_NAME.to_string(),
            copy: d.copy.clone(),
            size: d.size,
            bytes_read: d.bytes_read,
            bytes_stored: d.bytes_stored,
            stored_total: d.stored_total,
            job_id: job_id.clone(),
            created_at: match d.copied_at {
                0 => crate::catalog::now_ms(),
                at => at,
            },
        })
        .collect();
    {
        let refs = &refs;
        ctx.step("record-copies", |step| async move {
            catalog.insert_copy_refs(&point.id, refs)?;
            step.made(Undo::ForgetCopies {
                point: point.id.clone(),
                devices: refs.iter().map(|r| r.device_ref.clone()).collect(),
            });
            Ok(Done::new(
                (),
                format!("{} copy ref(s) recorded in point {}", refs.len(), point.id),
            ))
        })
        .await?;
    }

    let devices: Vec<serde_json::Value> = copied
        .iter()
        .map(|(device_ref, d)| {
            let mount = point
                .snapshots
                .iter()
                .find(|s| &s.device_ref == device_ref)
                .map(|s| s.mount_point.clone());
            json!({
                "device_ref": device_ref,
                "mount_point": mount,
                "copy": d.copy,
                "how": d.how,
                "size": d.size,
                "bytes_read": d.bytes_read,
                "bytes_stored": d.bytes_stored,
                "stored_total": d.stored_total,
                "compression": d.compression,
            })
        })
        .collect();
    // Said on every copy until the key has a second home (`copies key export`).
    let warnings: Vec<String> = store.key_backup_warning().into_iter().collect();
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok(json!({
        "recovery_point": point.id,
        "vm": vm.name,
        "proxy_vm": proxy.name,
        "warnings": warnings,
        "devices": devices,
        "bytes_read": copied.iter().map(|(_, d)| d.bytes_read).sum::<u64>(),
        "bytes_stored": copied.iter().map(|(_, d)| d.bytes_stored).sum::<u64>(),
    }))
}

/// Clones one LUN snapshot and exposes the clone to the proxy host, recording undos.
async fn clone_one(
    sa: &mut dyn crate::engine::ports::StorageArray,
    step: &Step,
    array: &str,
    s: &SnapshotRefRecord,
    proxy_host: &str,
    job_id: &str,
) -> anyhow::Result<LunClone> {
    let name = clone_name(job_id, &s.device_ref);
    let info = sa
        .clone_snapshot(&s.snapshot, &name, &step.token_for(&s.device_ref))
        .await?;
    step.made(Undo::DeleteLun {
        endpoint: array.to_string(),
        wwn: info.wwn.clone(),
        exposed_to: vec![proxy_host.to_string()],
    });
    crate::names::check_wwn(&info.wwn)
        .map_err(|e| anyhow!("array {array} answered clone-snapshot with a bad WWN: {e}"))?;
    if info.capacity == 0 {
        bail!("array {array} made clone {} with capacity 0", info.wwn);
    }
    sa.expose(&info.wwn, proxy_host).await?;
    Ok(LunClone {
        array: array.to_string(),
        wwn: info.wwn,
        capacity: info.capacity,
    })
}

/// The device id an attach or map call returned, after checking it landed where asked;
/// `made` records its undo first, so a device put at the wrong place is removed too.
pub(super) fn checked_mount(
    result: CallResult<crate::model::VmDevice>,
    mount_point: &str,
    endpoint: &str,
    made: impl FnOnce(&str),
) -> anyhow::Result<String> {
    let device = result?;
    made(&device.id);
    if device.mount_point != mount_point {
        bail!(
            "endpoint {endpoint} put the device at {} instead of {mount_point}",
            device.mount_point
        );
    }
    Ok(device.id)
}
