//! Unknown ids: a well-formed id of nothing answers `not-found` (how the host tells which
//! array owns a WWN, and that a delete already happened).

use crate::model::{NewDisk, VmSpec};

use super::cx::CAP;
use super::support::{Kind, refused, unknown_id, unknown_wwn};
use super::{Check, check};

const NF: &[Kind] = &[Kind::NotFound];

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.lookup.get-lun",
        StorageArray,
        [Lookup],
        Nothing,
        "get-lun of a well-formed WWN the array does not have answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            refused(
                a.get_lun(&unknown_wwn()).await,
                NF,
                "get-lun of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.delete-lun",
        StorageArray,
        [Lookup],
        Nothing,
        "delete-lun of an unknown WWN answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            refused(
                a.delete_lun(&unknown_wwn()).await,
                NF,
                "delete-lun of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.expose",
        StorageArray,
        [Lookup],
        Nothing,
        "expose of an unknown WWN answers not-found.",
        |cx| {
            let host = cx.host().await?;
            let mut a = cx.array().await?;
            refused(
                a.expose(&unknown_wwn(), &host).await,
                NF,
                "expose of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.unexpose",
        StorageArray,
        [Lookup],
        Nothing,
        "unexpose of an unknown WWN answers not-found.",
        |cx| {
            let host = cx.host().await?;
            let mut a = cx.array().await?;
            refused(
                a.unexpose(&unknown_wwn(), &host).await,
                NF,
                "unexpose of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.snapshot-luns",
        StorageArray,
        [Lookup],
        Nothing,
        "snapshot-luns naming an unknown WWN answers not-found and snapshots nothing.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let token = cx.token();
            refused(
                a.snapshot_luns(&[lun.wwn.clone(), unknown_wwn()], &token)
                    .await,
                NF,
                "snapshot-luns with an unknown WWN",
            )?;
            let n = a
                .list_snapshots()
                .await?
                .iter()
                .filter(|s| s.source == lun.wwn)
                .count();
            super::claim!(
                n == 0,
                "the refused group snapshot left {n} snapshot(s) of the known LUN"
            );
            Ok(())
        }
    ),
    check!(
        "a.lookup.revert-lun",
        StorageArray,
        [Lookup],
        Nothing,
        "revert-lun of an unknown WWN answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            let token = cx.token();
            refused(
                a.revert_lun(&unknown_wwn(), &unknown_id("snap"), &token)
                    .await,
                NF,
                "revert-lun of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.revert-snapshot",
        StorageArray,
        [Lookup],
        Nothing,
        "revert-lun of a LUN to an unknown snapshot answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let token = cx.token();
            refused(
                a.revert_lun(&lun.wwn, &unknown_id("snap"), &token).await,
                NF,
                "revert-lun to an unknown snapshot",
            )
        }
    ),
    check!(
        "a.lookup.delete-snapshot",
        StorageArray,
        [Lookup],
        Nothing,
        "delete-snapshot of an unknown snapshot id answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            refused(
                a.delete_snapshot(&unknown_id("snap")).await,
                NF,
                "delete-snapshot of an unknown id",
            )
        }
    ),
    check!(
        "a.lookup.clone",
        StorageArray,
        [Lookup],
        Nothing,
        "clone-snapshot of an unknown snapshot id answers not-found and makes no LUN.",
        |cx| {
            let mut a = cx.array().await?;
            let (name, token) = (cx.name("clone"), cx.token());
            refused(
                a.clone_snapshot(&unknown_id("snap"), &name, &token).await,
                NF,
                "clone-snapshot of an unknown id",
            )?;
            let n = a
                .list_luns()
                .await?
                .iter()
                .filter(|l| l.name == name)
                .count();
            super::claim!(n == 0, "the refused clone made a LUN anyway");
            Ok(())
        }
    ),
    check!(
        "a.lookup.open-reader",
        StorageArray,
        [Lookup],
        Nothing,
        "open-reader of an unknown WWN answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            refused(
                a.open_reader(&unknown_wwn(), None).await,
                NF,
                "open-reader of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.open-reader-snapshot",
        StorageArray,
        [Lookup],
        Nothing,
        "open-reader of a LUN's unknown snapshot answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            refused(
                a.open_reader(&lun.wwn, Some(&unknown_id("snap"))).await,
                NF,
                "open-reader of an unknown snapshot",
            )
        }
    ),
    check!(
        "a.lookup.open-writer",
        StorageArray,
        [Lookup],
        Nothing,
        "open-writer of an unknown WWN answers not-found.",
        |cx| {
            let mut a = cx.array().await?;
            refused(
                a.open_writer(&unknown_wwn()).await,
                NF,
                "open-writer of an unknown WWN",
            )
        }
    ),
    check!(
        "a.lookup.changed-since",
        StorageArray,
        [Lookup],
        Nothing,
        "changed-extents of a LUN since an unknown snapshot answers not-found (or unsupported).",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let r = a.open_reader(&lun.wwn, None).await?;
            let answer = a.changed_extents(&r, &unknown_id("snap")).await;
            a.close_reader(r).await?;
            refused(
                answer,
                &[Kind::NotFound, Kind::Unsupported],
                "changed-extents since an unknown snapshot",
            )
        }
    ),
    check!(
        "h.lookup.get-vm",
        Hypervisor,
        [Lookup],
        Nothing,
        "get-vm of an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            refused(
                h.get_vm(&unknown_id("vm")).await,
                NF,
                "get-vm of an unknown id",
            )
        }
    ),
    check!(
        "h.lookup.delete-vm",
        Hypervisor,
        [Lookup],
        Nothing,
        "delete-vm of an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            refused(
                h.delete_vm(&unknown_id("vm")).await,
                NF,
                "delete-vm of an unknown id",
            )
        }
    ),
    check!(
        "h.lookup.power",
        Hypervisor,
        [Lookup],
        Nothing,
        "power-on and power-off of an unknown VM id answer not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            refused(
                h.power_on(&unknown_id("vm")).await,
                NF,
                "power-on of an unknown id",
            )?;
            refused(
                h.power_off(&unknown_id("vm")).await,
                NF,
                "power-off of an unknown id",
            )
        }
    ),
    check!(
        "h.lookup.add-disk",
        Hypervisor,
        [Lookup],
        Nothing,
        "add-disk to an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let token = cx.token();
            let disk = NewDisk {
                capacity: CAP,
                mount_point: "/x".into(),
            };
            refused(
                h.add_disk(&unknown_id("vm"), &disk, &token).await,
                NF,
                "add-disk to an unknown VM",
            )
        }
    ),
    check!(
        "h.lookup.snapshot-vm",
        Hypervisor,
        [Lookup],
        Nothing,
        "snapshot-disks of an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let token = cx.token();
            refused(
                h.snapshot_disks(&unknown_id("vm"), &["dev-1".into()], &token)
                    .await,
                NF,
                "snapshot-disks of an unknown VM",
            )
        }
    ),
    check!(
        "h.lookup.snapshot-device",
        Hypervisor,
        [Lookup],
        Nothing,
        "snapshot-disks naming a device the VM does not have answers not-found and snapshots nothing.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            let token = cx.token();
            refused(
                h.snapshot_disks(
                    &vm.id,
                    &[vm.devices[0].id.clone(), unknown_id("dev")],
                    &token,
                )
                .await,
                NF,
                "snapshot-disks of an unknown device",
            )?;
            let n = h.list_snapshots(&vm.id).await?.len();
            super::claim!(n == 0, "the refused call left {n} snapshot(s)");
            Ok(())
        }
    ),
    check!(
        "h.lookup.list-snapshots",
        Hypervisor,
        [Lookup],
        Nothing,
        "list-snapshots of an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            refused(
                h.list_snapshots(&unknown_id("vm")).await,
                NF,
                "list-snapshots of an unknown VM",
            )
        }
    ),
    check!(
        "h.lookup.delete-snapshot",
        Hypervisor,
        [Lookup],
        Nothing,
        "delete-snapshot of an unknown snapshot id of a VM answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            refused(
                h.delete_snapshot(&vm.id, &unknown_id("snap")).await,
                NF,
                "delete-snapshot of an unknown id",
            )
        }
    ),
    check!(
        "h.lookup.revert",
        Hypervisor,
        [Lookup],
        Nothing,
        "revert-disks to an unknown snapshot id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            let token = cx.token();
            refused(
                h.revert_disks(&vm.id, &[unknown_id("snap")], &token).await,
                NF,
                "revert-disks to an unknown snapshot",
            )
        }
    ),
    check!(
        "h.lookup.open-reader",
        Hypervisor,
        [Lookup],
        Nothing,
        "open-reader of a device id the VM does not have answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            refused(
                h.open_reader(&vm.id, &unknown_id("dev"), None).await,
                NF,
                "open-reader of an unknown device",
            )
        }
    ),
    check!(
        "h.lookup.open-writer",
        Hypervisor,
        [Lookup],
        Nothing,
        "open-writer on an unknown VM id answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            refused(
                h.open_writer(&unknown_id("vm"), "dev-1").await,
                NF,
                "open-writer on an unknown VM",
            )
        }
    ),
    check!(
        "h.lookup.detach",
        Hypervisor,
        [Lookup],
        Nothing,
        "detach-disk of a device id the VM does not have answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            refused(
                h.detach_disk(&vm.id, &unknown_id("dev")).await,
                NF,
                "detach-disk of an unknown device",
            )
        }
    ),
    check!(
        "h.lookup.attach",
        Hypervisor,
        [Lookup],
        Nothing,
        "attach-snapshot of an unknown snapshot id answers not-found and attaches nothing.",
        |cx| {
            let mut h = cx.hv().await?;
            let source = cx.new_vm(h.as_mut(), 1).await?;
            let proxy = cx.new_vm(h.as_mut(), 0).await?;
            let token = cx.token();
            refused(
                h.attach_snapshot(&proxy.id, &source.id, &unknown_id("snap"), "/a", &token)
                    .await,
                NF,
                "attach-snapshot of an unknown snapshot",
            )?;
            let n = h.get_vm(&proxy.id).await?.devices.len();
            super::claim!(n == 0, "the refused attach left {n} device(s)");
            Ok(())
        }
    ),
    check!(
        "h.lookup.unmap",
        Hypervisor,
        [Lookup],
        Nothing,
        "unmap-lun of a WWN not mapped to the VM answers not-found.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            refused(
                h.unmap_lun(&vm.id, &unknown_wwn()).await,
                NF,
                "unmap-lun of an unmapped WWN",
            )
        }
    ),
    check!(
        "h.lookup.host",
        Hypervisor,
        [Lookup],
        Nothing,
        "create-vm on a host the hypervisor does not have answers not-found or invalid and makes no VM.",
        |cx| {
            let mut h = cx.hv().await?;
            let spec = VmSpec {
                hardware: Default::default(),
                name: cx.name("vm"),
                host_id: unknown_id("host"),
                devices: vec![],
            };
            let token = cx.token();
            refused(
                h.create_vm(&spec, &token).await,
                &[Kind::NotFound, Kind::Invalid],
                "create-vm on an unknown host",
            )?;
            let n = h
                .list_vms()
                .await?
                .iter()
                .filter(|v| v.name == spec.name)
                .count();
            super::claim!(n == 0, "the refused call made a VM anyway");
            Ok(())
        }
    ),
];
