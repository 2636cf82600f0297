//! Leaving nothing behind: what the systems hold before the run, the sweep after every
//! check (everything named with the run's prefix, so even what a broken adapter made twice
//! is found), and the checks that compare the end with the start.

use std::collections::BTreeSet;

use crate::model::{AdapterKind, DeviceBacking};

use super::{Cx, Res, Why, check, claim};

/// What the systems under test hold: LUNs and array snapshots, VMs and their snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub luns: BTreeSet<String>,
    pub array_snapshots: BTreeSet<String>,
    pub vms: BTreeSet<String>,
    /// `vm-id/snapshot-id`.
    pub vm_snapshots: BTreeSet<String>,
    /// The run's DNS records that exist, `NAME KIND`.
    pub dns_records: BTreeSet<String>,
    /// Every machine's power, `ID=on|off|unknown`.
    pub machine_power: BTreeSet<String>,
    /// Listing calls that failed (then the comparison cannot be trusted).
    pub errors: Vec<String>,
}

/// Lists everything on both sides.
pub async fn inventory(cx: &mut Cx) -> Inventory {
    let mut inv = Inventory::default();
    match cx.kind {
        AdapterKind::Dns => super::dns::ours(cx, &mut inv.dns_records, &mut inv.errors).await,
        AdapterKind::Machine => {
            super::machine::power(cx, &mut inv.machine_power, &mut inv.errors).await
        }
        _ => {}
    }
    if cx.array_side().is_some() {
        match cx.array().await {
            Ok(mut a) => {
                match a.list_luns().await {
                    Ok(luns) => inv.luns = luns.into_iter().map(|l| l.wwn).collect(),
                    Err(e) => inv.errors.push(e.to_string()),
                }
                match a.list_snapshots().await {
                    Ok(s) => inv.array_snapshots = s.into_iter().map(|s| s.id).collect(),
                    Err(e) => inv.errors.push(e.to_string()),
                }
            }
            Err(e) => inv.errors.push(format!("{e:?}")),
        }
    }
    if cx.hypervisor_side().is_some() {
        match cx.hv().await {
            Ok(mut h) => match h.list_vms().await {
                Ok(vms) => {
                    for vm in vms {
                        match h.list_snapshots(&vm.id).await {
                            Ok(s) => inv
                                .vm_snapshots
                                .extend(s.into_iter().map(|s| format!("{}/{}", vm.id, s.id))),
                            Err(e) => inv.errors.push(e.to_string()),
                        }
                        inv.vms.insert(vm.id);
                    }
                }
                Err(e) => inv.errors.push(e.to_string()),
            },
            Err(e) => inv.errors.push(format!("{e:?}")),
        }
    }
    inv
}

/// Removes everything of this run's that is still there (best effort; what stays is found
/// by the cleanup checks).
pub async fn sweep(cx: &mut Cx) {
    match cx.kind {
        AdapterKind::Dns => super::dns::sweep(cx).await,
        AdapterKind::Machine => super::machine::sweep(cx).await,
        _ => {}
    }
    if cx.hypervisor_side().is_some()
        && let Ok(mut h) = cx.hv().await
    {
        for (vm, device) in std::mem::take(&mut cx.attachments) {
            let _ = h.detach_disk(&vm, &device).await;
        }
        for _pass in 0..3 {
            let Ok(vms) = h.list_vms().await else { break };
            let ours: Vec<_> = vms.into_iter().filter(|v| cx.ours(&v.name)).collect();
            if ours.is_empty() {
                break;
            }
            for vm in &ours {
                let _ = h.power_off(&vm.id).await;
                if let Ok(snapshots) = h.list_snapshots(&vm.id).await {
                    for s in snapshots {
                        let _ = h.delete_snapshot(&vm.id, &s.id).await;
                    }
                }
            }
            for vm in &ours {
                for device in &vm.devices {
                    if let DeviceBacking::MappedLun(lun) = &device.backing {
                        let _ = h.unmap_lun(&vm.id, &lun.wwn).await;
                    }
                }
                let _ = h.delete_vm(&vm.id).await;
            }
        }
    }
    if cx.array_side().is_some()
        && let Ok(mut a) = cx.array().await
    {
        for _pass in 0..4 {
            let Ok(luns) = a.list_luns().await else { break };
            let ours: Vec<_> = luns.into_iter().filter(|l| cx.ours(&l.name)).collect();
            if ours.is_empty() {
                break;
            }
            for lun in &ours {
                for host in &lun.exposed_to {
                    let _ = a.unexpose(&lun.wwn, host).await;
                }
            }
            let wwns: BTreeSet<&str> = ours.iter().map(|l| l.wwn.as_str()).collect();
            if let Ok(snapshots) = a.list_snapshots().await {
                for s in snapshots
                    .iter()
                    .filter(|s| wwns.contains(s.source.as_str()))
                {
                    let _ = a.delete_snapshot(&s.id).await;
                }
            }
            for lun in &ours {
                let _ = a.delete_lun(&lun.wwn).await;
            }
        }
    }
}

/// Sweeps, then compares one part of the inventory with the start.
pub(super) async fn compare(
    cx: &mut Cx,
    what: &str,
    part: fn(&Inventory) -> &BTreeSet<String>,
) -> Res {
    sweep(cx).await;
    let after = inventory(cx).await;
    let Some(before) = cx.before.clone() else {
        return Err(Why::Fail("suite bug: no inventory before the run".into()));
    };
    claim!(
        before.errors.is_empty() && after.errors.is_empty(),
        "listing failed, so what is left cannot be told: {}",
        before
            .errors
            .iter()
            .chain(&after.errors)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    let left: Vec<String> = part(&after).difference(part(&before)).cloned().collect();
    let gone: Vec<String> = part(&before).difference(part(&after)).cloned().collect();
    for l in &left {
        cx.left_behind.push(format!("{what} {l}"));
    }
    claim!(
        left.is_empty(),
        "the suite could not remove {what}: {}",
        left.join(", ")
    );
    claim!(
        gone.is_empty(),
        "{what} that existed before the run are gone: {}",
        gone.join(", ")
    );
    Ok(())
}

pub(super) const CHECKS: &[super::Check] = &[
    check!(
        "a.cleanup.luns",
        StorageArray,
        [Cleanup],
        Nothing,
        "After the run list-luns answers exactly the LUNs there were before it.",
        |cx| { compare(cx, "LUNs", |i| &i.luns).await }
    ),
    check!(
        "a.cleanup.snapshots",
        StorageArray,
        [Cleanup],
        Nothing,
        "After the run list-snapshots answers exactly the array snapshots there were before it.",
        |cx| { compare(cx, "array snapshots", |i| &i.array_snapshots).await }
    ),
    check!(
        "h.cleanup.vms",
        Hypervisor,
        [Cleanup],
        Nothing,
        "After the run list-vms answers exactly the VMs there were before it.",
        |cx| { compare(cx, "VMs", |i| &i.vms).await }
    ),
    check!(
        "h.cleanup.snapshots",
        Hypervisor,
        [Cleanup],
        Nothing,
        "After the run every VM has exactly the disk snapshots it had before it.",
        |cx| { compare(cx, "disk snapshots", |i| &i.vm_snapshots).await }
    ),
    check!(
        "h.cleanup.luns",
        Hypervisor,
        [Cleanup],
        Array,
        "After the run the array beside the hypervisor holds exactly the LUNs it held before it.",
        |cx| { compare(cx, "LUNs", |i| &i.luns).await }
    ),
];
