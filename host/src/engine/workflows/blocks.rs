//! Building blocks the workflows share: snapshots of a VM's virtual disks or of a group of
//! LUNs (checked against what was asked), powering a VM off and back on, grouping a point's
//! devices by kind and array. Each records what undoes it through the step's [`Step`].

use std::collections::BTreeMap;

use anyhow::bail;

use crate::catalog::SnapshotRefRecord;
use crate::engine::journal::{Done, Step, StepCtx};
use crate::engine::ports::Endpoints;
use crate::engine::undo::Undo;
use crate::model::Device;
use crate::model::SnapshotRef;

/// Snapshots, keyed by what was snapshotted (device id or WWN).
pub type Taken = BTreeMap<String, SnapshotRef>;

/// Checks an adapter returned exactly one snapshot per thing asked for, keyed by source.
pub fn match_refs(
    endpoint: &str,
    asked: &[String],
    refs: Vec<SnapshotRef>,
) -> anyhow::Result<BTreeMap<String, SnapshotRef>> {
    let mut by_source = BTreeMap::new();
    for r in refs {
        if !asked.contains(&r.source) || r.id.is_empty() {
            bail!(
                "endpoint {endpoint} returned a snapshot '{}' of '{}', which was not asked for",
                r.id,
                r.source
            );
        }
        if by_source.insert(r.source.clone(), r).is_some() {
            bail!("endpoint {endpoint} returned two snapshots of the same source");
        }
    }
    if let Some(missing) = asked.iter().find(|a| !by_source.contains_key(*a)) {
        bail!("endpoint {endpoint} returned no snapshot of '{missing}'");
    }
    Ok(by_source)
}

/// Snapshots `device_ids` of one VM together through its hypervisor; the undo deletes them.
pub async fn snapshot_disks(
    endpoints: &dyn Endpoints,
    step: &Step,
    endpoint: &str,
    vm_ref: &str,
    device_ids: &[String],
    label: &str,
) -> anyhow::Result<Done<Taken>> {
    let taken = endpoints
        .hypervisor(endpoint)
        .await?
        .snapshot_disks(vm_ref, device_ids, step.token())
        .await?;
    for s in &taken {
        step.made(Undo::DeleteDiskSnapshot {
            endpoint: endpoint.to_string(),
            vm_ref: vm_ref.to_string(),
            snapshot: s.id.clone(),
        });
    }
    let by_source = match_refs(endpoint, device_ids, taken)?;
    let detail = format!("{} {label} on {endpoint}", by_source.len());
    Ok(Done::new(by_source, detail))
}

/// Snapshots `wwns` together (one consistency group) on `array`; the undo deletes them.
pub async fn snapshot_luns(
    endpoints: &dyn Endpoints,
    step: &Step,
    array: &str,
    wwns: &[String],
    label: &str,
) -> anyhow::Result<Done<Taken>> {
    let taken = endpoints
        .storage_array(array)
        .await?
        .snapshot_luns(wwns, step.token())
        .await?;
    for s in &taken {
        step.made(Undo::DeleteLunSnapshot {
            endpoint: array.to_string(),
            snapshot: s.id.clone(),
        });
    }
    let by_source = match_refs(array, wwns, taken)?;
    let detail = format!(
        "{} {label} taken together on array {array}: {}",
        by_source.len(),
        wwns.join(", ")
    );
    Ok(Done::new(by_source, detail))
}

/// Powers a VM on or off; the undo powers it back.
pub async fn set_power(
    endpoints: &dyn Endpoints,
    step: &Step,
    endpoint: &str,
    vm_ref: &str,
    vm_name: &str,
    on: bool,
) -> anyhow::Result<Done<()>> {
    let mut hv = endpoints.hypervisor(endpoint).await?;
    let (endpoint, vm_ref_owned) = (endpoint.to_string(), vm_ref.to_string());
    if on {
        hv.power_on(vm_ref).await?;
        step.made(Undo::PowerOff {
            endpoint,
            vm_ref: vm_ref_owned,
        });
        Ok(Done::new((), format!("powered on {vm_name}")))
    } else {
        hv.power_off(vm_ref).await?;
        step.made(Undo::PowerOn {
            endpoint,
            vm_ref: vm_ref_owned,
        });
        Ok(Done::new((), format!("powered off {vm_name}")))
    }
}

/// A VM to power off for the length of a job and back on at its end, if it was on.
pub struct PowerCycle<'a> {
    pub endpoint: &'a str,
    pub vm_ref: &'a str,
    pub vm_name: &'a str,
    pub was_on: bool,
}

impl PowerCycle<'_> {
    /// The `power-off` step, if the VM was on.
    pub async fn off(&self, ctx: &mut StepCtx) -> anyhow::Result<()> {
        self.step(ctx, "power-off", false).await
    }

    /// The `power-on` step, if the VM was on.
    pub async fn back_on(&self, ctx: &mut StepCtx) -> anyhow::Result<()> {
        self.step(ctx, "power-on", true).await
    }

    async fn step(&self, ctx: &mut StepCtx, name: &str, on: bool) -> anyhow::Result<()> {
        if !self.was_on {
            return Ok(());
        }
        let endpoints = ctx.endpoints.clone();
        ctx.step(name, |step| {
            let endpoints = endpoints.clone();
            async move {
                set_power(
                    endpoints.as_ref(),
                    &step,
                    self.endpoint,
                    self.vm_ref,
                    self.vm_name,
                    on,
                )
                .await
            }
        })
        .await
    }

    /// The names of the steps around the job's work: `(before, after)`.
    pub fn planned(was_on: bool) -> (Vec<String>, Vec<String>) {
        if was_on {
            (vec!["power-off".into()], vec!["power-on".into()])
        } else {
            (Vec::new(), Vec::new())
        }
    }
}

/// A point's devices by kind: its virtual-disk snapshots, and its LUN snapshots grouped by
/// the array that holds them (one consistency group per array).
pub struct ByKind<'a> {
    pub disks: Vec<&'a SnapshotRefRecord>,
    pub luns: BTreeMap<&'a str, Vec<&'a SnapshotRefRecord>>,
}

impl<'a> ByKind<'a> {
    /// Splits `snapshots` by kind; a record whose kind makes no sense is an error.
    pub fn of(snapshots: &'a [SnapshotRefRecord]) -> anyhow::Result<Self> {
        let mut split = Self {
            disks: Vec::new(),
            luns: BTreeMap::new(),
        };
        for s in snapshots {
            match s.device()? {
                Device::MappedLun { .. } => {
                    split.luns.entry(s.endpoint.as_str()).or_default().push(s)
                }
                Device::VirtualDisk { .. } => split.disks.push(s),
            }
        }
        Ok(split)
    }
}
