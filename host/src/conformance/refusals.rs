//! Calls that must be refused: deleting an exposed LUN, a LUN with snapshots, an attached
//! snapshot, a running VM; and a hypervisor snapshotting a physically mapped LUN (the host
//! must go to the array: `unsupported` is the required answer here, not a reason to skip).

use crate::engine::ports::{Hypervisor, StorageArray};
use crate::model::{DeviceBacking, LunInfo, LunMapping, MappedLun, MappingMode, VmDevice, VmInfo};

use super::support::{Kind, refused};
use super::{Check, Cx, Res, Why, check, claim};

/// A LUN on the array, exposed to the hypervisor's host and mapped into a new VM that also
/// has one virtual disk.
async fn mapped(
    cx: &mut Cx,
    mode: MappingMode,
) -> Result<
    (
        Box<dyn StorageArray>,
        Box<dyn Hypervisor>,
        LunInfo,
        VmInfo,
        VmDevice,
    ),
    Why,
> {
    let mut a = cx.array().await?;
    let lun = cx.new_lun(a.as_mut()).await?;
    let host = cx.host().await?;
    a.expose(&lun.wwn, &host).await?;
    let mut h = cx.hv().await?;
    let vm = cx.new_vm(h.as_mut(), 1).await?;
    let mapping = LunMapping {
        lun: MappedLun {
            wwn: lun.wwn.clone(),
            mode,
        },
        capacity: lun.capacity,
        mount_point: "/lun".into(),
    };
    let token = cx.token();
    let device = h.map_lun(&vm.id, &mapping, &token).await?;
    Ok((a, h, lun, vm, device))
}

async fn physical_refused(cx: &mut Cx, with_disk: bool) -> Res {
    let (_a, mut h, _lun, vm, device) = mapped(cx, MappingMode::Physical).await?;
    let mut ids = vec![device.id.clone()];
    if with_disk {
        ids.insert(0, vm.devices[0].id.clone());
    }
    let token = cx.token();
    refused(
        h.snapshot_disks(&vm.id, &ids, &token).await,
        &[Kind::Unsupported],
        "snapshot-disks of a physically mapped LUN",
    )?;
    let n = h.list_snapshots(&vm.id).await?.len();
    claim!(n == 0, "the refused snapshot left {n} snapshot(s) behind");
    Ok(())
}

async fn map_reports(cx: &mut Cx, mode: MappingMode) -> Res {
    let (_a, mut h, lun, vm, device) = mapped(cx, mode).await?;
    claim!(
        device.backing
            == DeviceBacking::MappedLun(MappedLun {
                wwn: lun.wwn.clone(),
                mode
            }),
        "map-lun answered backing {:?}",
        device.backing
    );
    claim!(
        device.capacity == lun.capacity && device.mount_point == "/lun",
        "map-lun answered {device:?}"
    );
    let got = h.get_vm(&vm.id).await?;
    claim!(
        got.devices.contains(&device),
        "get-vm does not list the mapped LUN as map-lun answered it"
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.refuse.delete-exposed",
        StorageArray,
        [Refusal],
        Nothing,
        "delete-lun of an exposed LUN is refused with conflict and the LUN stays; once unexposed it can be deleted.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let host = cx.host().await?;
            a.expose(&lun.wwn, &host).await?;
            refused(
                a.delete_lun(&lun.wwn).await,
                &[Kind::Conflict],
                "delete-lun of an exposed LUN",
            )?;
            claim!(
                a.get_lun(&lun.wwn).await.is_ok(),
                "the LUN is gone after a refused delete"
            );
            a.unexpose(&lun.wwn, &host).await?;
            a.delete_lun(&lun.wwn).await?;
            Ok(())
        }
    ),
    check!(
        "a.refuse.delete-with-snapshot",
        StorageArray,
        [Refusal],
        Nothing,
        "delete-lun of a LUN with a snapshot is refused with conflict and both stay; once the snapshot is deleted the LUN can be.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let token = cx.token();
            let snaps = a
                .snapshot_luns(std::slice::from_ref(&lun.wwn), &token)
                .await?;
            let snap = snaps
                .first()
                .ok_or_else(|| Why::Fail("snapshot-luns answered nothing".into()))?
                .id
                .clone();
            refused(
                a.delete_lun(&lun.wwn).await,
                &[Kind::Conflict],
                "delete-lun of a LUN with a snapshot",
            )?;
            claim!(
                a.get_lun(&lun.wwn).await.is_ok(),
                "the LUN is gone after a refused delete"
            );
            claim!(
                a.list_snapshots().await?.iter().any(|s| s.id == snap),
                "the snapshot is gone after a refused delete"
            );
            a.delete_snapshot(&snap).await?;
            a.delete_lun(&lun.wwn).await?;
            Ok(())
        }
    ),
    check!(
        "h.refuse.delete-attached",
        Hypervisor,
        [Refusal],
        Nothing,
        "delete-snapshot of a snapshot attached to another VM is refused with conflict; once detached it can be deleted.",
        |cx| {
            let mut h = cx.hv().await?;
            let source = cx.new_vm(h.as_mut(), 1).await?;
            let proxy = cx.new_vm(h.as_mut(), 0).await?;
            let token = cx.token();
            let snaps = h
                .snapshot_disks(&source.id, &[source.devices[0].id.clone()], &token)
                .await?;
            let snap = snaps
                .first()
                .ok_or_else(|| Why::Fail("snapshot-disks answered nothing".into()))?
                .id
                .clone();
            let token = cx.token();
            let attached = h
                .attach_snapshot(&proxy.id, &source.id, &snap, "/attached", &token)
                .await?;
            cx.attachments.push((proxy.id.clone(), attached.id.clone()));
            refused(
                h.delete_snapshot(&source.id, &snap).await,
                &[Kind::Conflict],
                "delete-snapshot of an attached snapshot",
            )?;
            claim!(
                h.list_snapshots(&source.id)
                    .await?
                    .iter()
                    .any(|s| s.id == snap),
                "the snapshot is gone after a refused delete"
            );
            h.detach_disk(&proxy.id, &attached.id).await?;
            h.delete_snapshot(&source.id, &snap).await?;
            Ok(())
        }
    ),
    check!(
        "h.refuse.delete-powered-on",
        Hypervisor,
        [Refusal],
        Nothing,
        "delete-vm of a powered-on VM is refused with conflict and the VM stays.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            h.power_on(&vm.id).await?;
            refused(
                h.delete_vm(&vm.id).await,
                &[Kind::Conflict],
                "delete-vm of a powered-on VM",
            )?;
            claim!(
                h.get_vm(&vm.id).await.is_ok(),
                "the VM is gone after a refused delete"
            );
            Ok(())
        }
    ),
    check!(
        "h.refuse.physical-snapshot",
        Hypervisor,
        [Refusal],
        Array,
        "snapshot-disks of a physically mapped LUN is refused with unsupported and snapshots nothing.",
        |cx| { physical_refused(cx, false).await }
    ),
    check!(
        "h.refuse.physical-with-disk",
        Hypervisor,
        [Refusal],
        Array,
        "snapshot-disks of a virtual disk together with a physically mapped LUN is refused with unsupported and snapshots neither.",
        |cx| { physical_refused(cx, true).await }
    ),
    check!(
        "h.map.physical",
        Hypervisor,
        [Basic],
        Array,
        "map-lun in physical mode answers a device backed by that WWN in physical mode with the LUN's capacity, and get-vm lists it.",
        |cx| { map_reports(cx, MappingMode::Physical).await }
    ),
    check!(
        "h.map.virtual",
        Hypervisor,
        [Basic],
        Array,
        "map-lun in virtual mode answers a device backed by that WWN in virtual mode with the LUN's capacity, and get-vm lists it.",
        |cx| { map_reports(cx, MappingMode::Virtual).await }
    ),
    check!(
        "h.map.unmap",
        Hypervisor,
        [Basic],
        Array,
        "unmap-lun removes the mapped LUN from the VM and leaves its other devices.",
        |cx| {
            let (_a, mut h, lun, vm, device) = mapped(cx, MappingMode::Physical).await?;
            h.unmap_lun(&vm.id, &lun.wwn).await?;
            let got = h.get_vm(&vm.id).await?;
            claim!(
                !got.devices.iter().any(|d| d.id == device.id),
                "the LUN is still mapped after unmap-lun"
            );
            claim!(
                got.devices.len() == 1,
                "unmap-lun took other devices: {:?}",
                got.devices
            );
            Ok(())
        }
    ),
];
