//! Step bodies the workflows share: taking snapshots of a VM's virtual disks or of a group
//! of LUNs, checking the adapter's answer, and saying how to undo it.

use std::collections::BTreeMap;

use anyhow::bail;

use super::journal::Done;
use super::ports::Endpoints;
use super::undo::Undo;
use crate::contract::SnapshotRef;

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
    endpoint: &str,
    vm_ref: &str,
    device_ids: &[String],
    token: &str,
    label: &str,
) -> anyhow::Result<Done<Taken>> {
    let taken = endpoints
        .hypervisor(endpoint)
        .await?
        .snapshot_disks(vm_ref, device_ids, token)
        .await?;
    let undo = taken
        .iter()
        .map(|s| Undo::DeleteDiskSnapshot {
            endpoint: endpoint.to_string(),
            vm_ref: vm_ref.to_string(),
            snapshot: s.id.clone(),
        })
        .collect();
    let by_source = match_refs(endpoint, device_ids, taken)?;
    let detail = format!("{} {label} on {endpoint}", by_source.len());
    Ok(Done::new(by_source, detail).undo(undo))
}

/// Snapshots `wwns` together (one consistency group) on `array`; the undo deletes them.
pub async fn snapshot_luns(
    endpoints: &dyn Endpoints,
    array: &str,
    wwns: &[String],
    token: &str,
    label: &str,
) -> anyhow::Result<Done<Taken>> {
    let taken = endpoints
        .storage_array(array)
        .await?
        .snapshot_luns(wwns, token)
        .await?;
    let undo = taken
        .iter()
        .map(|s| Undo::DeleteLunSnapshot {
            endpoint: array.to_string(),
            snapshot: s.id.clone(),
        })
        .collect();
    let by_source = match_refs(array, wwns, taken)?;
    let detail = format!(
        "{} {label} taken together on array {array}: {}",
        by_source.len(),
        wwns.join(", ")
    );
    Ok(Done::new(by_source, detail).undo(undo))
}

/// Powers a VM on or off; the undo powers it back.
pub async fn set_power(
    endpoints: &dyn Endpoints,
    endpoint: &str,
    vm_ref: &str,
    vm_name: &str,
    on: bool,
) -> anyhow::Result<Done<()>> {
    let mut hv = endpoints.hypervisor(endpoint).await?;
    let (endpoint, vm_ref_owned) = (endpoint.to_string(), vm_ref.to_string());
    if on {
        hv.power_on(vm_ref).await?;
        Ok(
            Done::new((), format!("powered on {vm_name}")).undo(vec![Undo::PowerOff {
                endpoint,
                vm_ref: vm_ref_owned,
            }]),
        )
    } else {
        hv.power_off(vm_ref).await?;
        Ok(
            Done::new((), format!("powered off {vm_name}")).undo(vec![Undo::PowerOn {
                endpoint,
                vm_ref: vm_ref_owned,
            }]),
        )
    }
}
