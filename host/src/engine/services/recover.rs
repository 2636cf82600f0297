//! `catalog recover --from-copies`: rebuilds a lost catalog's VMs, recovery points and copy
//! refs from what each copy's manifest says about itself (`copy_label`), so losing
//! `catalog.sqlite` loses no copy.
//!
//! What is already in the catalog is kept as it is (running it twice changes nothing). A
//! recovered point's snapshot refs stay usable only where the endpoint still reports the
//! snapshot; any other is recorded as expired, so nothing ever reverts to a snapshot that
//! may be gone (`reconcile` shows the snapshots the endpoints still hold).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::{Catalog, MAPPED_LUN, PointRecord, VmRecord};
use crate::copies::CopyStore;
use crate::engine::copy_label::{CopyLabel, Origin};
use crate::engine::ports::Endpoints;
use crate::engine::transfer::STORE_NAME;

/// What a recovery found and did.
#[derive(Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RecoverReport {
    /// Manifests read from the copy store.
    pub manifests: usize,
    /// VMs recorded (they were not in the catalog).
    pub vms_recorded: Vec<String>,
    /// Recovery points recorded.
    pub points_recorded: Vec<String>,
    /// Copy refs recorded (in new points and in points the catalog had without them).
    pub copies_recorded: usize,
    /// Points the catalog already had.
    pub points_known: usize,
    /// Snapshot refs of recorded points whose snapshot the endpoint still holds.
    pub snapshots_present: usize,
    /// Snapshot refs recorded as expired: the endpoint no longer reports the snapshot, or
    /// could not be asked.
    pub snapshots_expired: usize,
    /// Copies that could not be placed, and why.
    pub skipped: Vec<Skipped>,
}

/// A copy recovery could not place.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Skipped {
    pub copy: String,
    pub reason: String,
}

/// One copy as its manifest describes it.
struct Found {
    label: CopyLabel,
    origin: Origin,
    size: u64,
    stored_total: u64,
}

/// Reads every manifest's label; copies whose label cannot say where they belong are
/// reported as skipped.
fn read_labels(store: &CopyStore, report: &mut RecoverReport) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    for id in store.list_manifests()? {
        report.manifests += 1;
        let skip = |reason: String| Skipped {
            copy: id.clone(),
            reason,
        };
        let manifest = match store.read_manifest(&id) {
            Ok(m) => m,
            Err(e) => {
                report
                    .skipped
                    .push(skip(format!("its manifest cannot be read: {e}")));
                continue;
            }
        };
        let label = match CopyLabel::parse(&manifest.label) {
            Ok(label) => label,
            Err(reason) => {
                report.skipped.push(skip(reason));
                continue;
            }
        };
        let Some(origin) = label.origin.clone() else {
            report.skipped.push(skip(format!(
                "it was made before manifests named their VM and point (label version {})",
                label.label_version
            )));
            continue;
        };
        if label.copy != id {
            report.skipped.push(skip(format!(
                "its label names copy {}, not the manifest's own id",
                label.copy
            )));
            continue;
        }
        found.push(Found {
            label,
            origin,
            size: manifest.device_size(),
            stored_total: manifest.stats().stored_bytes,
        });
    }
    Ok(found)
}

/// The snapshot ids each endpoint still reports, for the VMs and arrays of `found`; an
/// endpoint that cannot be asked is absent (its snapshots count as gone).
async fn live_snapshots(
    endpoints: &dyn Endpoints,
    found: &[Found],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut vms_on: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut arrays: BTreeSet<&str> = BTreeSet::new();
    for f in found {
        if f.label.device_kind == MAPPED_LUN {
            arrays.insert(&f.origin.snapshot_endpoint);
        } else {
            vms_on
                .entry(&f.origin.snapshot_endpoint)
                .or_default()
                .insert(&f.origin.vm.vm_ref);
        }
    }
    let mut live: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (endpoint, vm_refs) in vms_on {
        let mut hv = match endpoints.hypervisor(endpoint).await {
            Ok(hv) => hv,
            Err(e) => {
                tracing::warn!("recover: cannot list the snapshots on {endpoint}: {e:#}");
                continue;
            }
        };
        // A VM that is gone (or cannot be asked) has no snapshots to keep; the others on the
        // same endpoint still count.
        let mut ids = BTreeSet::new();
        for vm_ref in vm_refs {
            match hv.list_snapshots(vm_ref).await {
                Ok(snaps) => ids.extend(snaps.into_iter().map(|s| s.id)),
                Err(e) => tracing::warn!(
                    "recover: cannot list the snapshots of VM {vm_ref} on {endpoint}: {e}"
                ),
            }
        }
        live.insert(endpoint.to_string(), ids);
    }
    for endpoint in arrays {
        let asked = async {
            let mut sa = endpoints.storage_array(endpoint).await?;
            anyhow::Ok(sa.list_snapshots().await?)
        }
        .await;
        match asked {
            Ok(snaps) => {
                live.insert(
                    endpoint.to_string(),
                    snaps.into_iter().map(|s| s.id).collect(),
                );
            }
            Err(e) => tracing::warn!("recover: cannot list the snapshots on {endpoint}: {e:#}"),
        }
    }
    live
}

/// Why `vm` (as a copy recorded it) cannot be placed in this catalog, if it cannot.
fn vm_conflict(catalog: &Catalog, vm: &VmRecord) -> anyhow::Result<Option<String>> {
    if let Some(known) = catalog.vm(&vm.name)? {
        if known.endpoint != vm.endpoint || known.vm_ref != vm.vm_ref {
            return Ok(Some(format!(
                "the catalog's VM {} is {} on {}, the copy's is {} on {}",
                vm.name, known.vm_ref, known.endpoint, vm.vm_ref, vm.endpoint
            )));
        }
        return Ok(None);
    }
    if !catalog.endpoints()?.iter().any(|e| e.name == vm.endpoint) {
        return Ok(Some(format!(
            "its VM {}'s hypervisor endpoint {} is not configured; add it \
             (`tidemark endpoint add {} …`) and run the recovery again",
            vm.name, vm.endpoint, vm.endpoint
        )));
    }
    if let Some(other) = catalog
        .vms()?
        .into_iter()
        .find(|v| v.endpoint == vm.endpoint && v.vm_ref == vm.vm_ref)
    {
        return Ok(Some(format!(
            "VM {} on {} is in the catalog as {}",
            vm.vm_ref, vm.endpoint, other.name
        )));
    }
    Ok(None)
}

/// Rebuilds what the catalog lacks of the copies in `store`.
pub async fn from_copies(
    catalog: &Catalog,
    store: &CopyStore,
    endpoints: &dyn Endpoints,
) -> anyhow::Result<RecoverReport> {
    let mut report = RecoverReport::default();
    let found = tokio::task::block_in_place(|| read_labels(store, &mut report))?;
    // Each VM as its newest copy recorded it.
    let mut newest_vm: BTreeMap<&str, &Found> = BTreeMap::new();
    for f in &found {
        let slot = newest_vm.entry(&f.origin.vm.name).or_insert(f);
        if f.origin.copied_at > slot.origin.copied_at {
            *slot = f;
        }
    }
    let mut by_point: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    for f in &found {
        by_point.entry(&f.origin.point).or_default().push(f);
    }
    let live = live_snapshots(endpoints, &found).await;
    let now = crate::catalog::now_ms();
    let mut blocked_vms: BTreeMap<String, String> = BTreeMap::new();
    for (name, f) in &newest_vm {
        match vm_conflict(catalog, &f.origin.vm)? {
            Some(reason) => {
                blocked_vms.insert(name.to_string(), reason);
            }
            None if catalog.vm(name)?.is_none() => {
                catalog.upsert_vm(&f.origin.vm)?;
                report.vms_recorded.push(name.to_string());
            }
            None => {}
        }
    }
    for (point_id, copies) in by_point {
        let first = &copies[0].origin;
        let skip_all = |report: &mut RecoverReport, reason: &str| {
            report.skipped.extend(copies.iter().map(|f| Skipped {
                copy: f.label.copy.clone(),
                reason: reason.to_string(),
            }))
        };
        if let Some(reason) = blocked_vms.get(&first.vm.name) {
            skip_all(&mut report, reason);
            continue;
        }
        if copies.iter().any(|f| f.origin.vm.name != first.vm.name) {
            skip_all(
                &mut report,
                &format!("the copies of point {point_id} name different VMs"),
            );
            continue;
        }
        let refs: Vec<_> = copies
            .iter()
            .map(|f| {
                f.origin
                    .copy_ref(&f.label, STORE_NAME, f.size, f.stored_total)
            })
            .collect();
        if let Some(known) = catalog.point(point_id)? {
            if known.vm_name != first.vm.name {
                skip_all(
                    &mut report,
                    &format!(
                        "the catalog's point {point_id} is of VM {}, the copies' of {}",
                        known.vm_name, first.vm.name
                    ),
                );
                continue;
            }
            report.points_known += 1;
            let missing: Vec<_> = refs
                .into_iter()
                .filter(|r| known.copy_of(&r.device_ref).is_none())
                .collect();
            catalog.insert_copy_refs(point_id, &missing)?;
            report.copies_recorded += missing.len();
            continue;
        }
        let snapshots: Vec<_> = copies
            .iter()
            .map(|f| f.origin.snapshot_ref(&f.label))
            .collect();
        catalog.insert_point(&PointRecord {
            id: point_id.to_string(),
            vm_name: first.vm.name.clone(),
            created_at: first.point_created_at,
            job_id: first.point_job.clone(),
            snapshots: snapshots.clone(),
            copies: Vec::new(),
        })?;
        catalog.insert_copy_refs(point_id, &refs)?;
        report.copies_recorded += refs.len();
        for s in &snapshots {
            let present = live
                .get(&s.endpoint)
                .is_some_and(|ids| ids.contains(&s.snapshot));
            if present {
                report.snapshots_present += 1;
            } else {
                catalog.mark_snapshot_expired(point_id, &s.device_ref, now)?;
                report.snapshots_expired += 1;
            }
        }
        report.points_recorded.push(point_id.to_string());
    }
    Ok(report)
}
