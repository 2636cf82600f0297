//! Idempotency tokens: every creating call, repeated with its token, answers what the first
//! call made and makes nothing more (how a resumed job's retry stays harmless).

use crate::model::{DeviceBacking, LunMapping, MappedLun, MappingMode, NewDisk, VmSpec};

use super::cx::CAP;
use super::support::{Kind, refused};
use super::{Check, Cx, Res, Why, check, claim};

async fn create_lun_twice(cx: &mut Cx, count: bool, fresh_session: bool, rename: bool) -> Res {
    let mut a = cx.array().await?;
    let (name, token) = (cx.name("lun"), cx.token());
    let first = a.create_lun(&name, CAP, &token).await?;
    if fresh_session {
        a = cx.array().await?;
    }
    let second_name = if rename {
        cx.name("other")
    } else {
        name.clone()
    };
    let second = a.create_lun(&second_name, CAP, &token).await?;
    claim!(
        second.wwn == first.wwn,
        "the repeat answered LUN {}, the first call {}",
        second.wwn,
        first.wwn
    );
    if count {
        let same: Vec<_> = a
            .list_luns()
            .await?
            .into_iter()
            .filter(|l| l.name == name || l.name == second_name)
            .collect();
        claim!(
            same.len() == 1,
            "{} LUNs exist after one token was used twice",
            same.len()
        );
    }
    Ok(())
}

async fn snapshot_twice(cx: &mut Cx, count: bool) -> Res {
    let mut s = cx.sess().await?;
    let devs = cx.devices(&mut s, 1).await?;
    let token = cx.token();
    let first = s.snapshot(&devs, &token).await?;
    let second = s.snapshot(&devs, &token).await?;
    let ids = |r: &[crate::model::SnapshotRef]| r.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    claim!(
        ids(&first) == ids(&second),
        "the repeat answered {:?}, the first call {:?}",
        ids(&second),
        ids(&first)
    );
    if count {
        let n = s.snapshots_of(&devs[0]).await?.len();
        claim!(n == 1, "{n} snapshots exist after one token was used twice");
    }
    Ok(())
}

async fn clone_twice(cx: &mut Cx, count: bool) -> Res {
    let mut a = cx.array().await?;
    let lun = cx.new_lun(a.as_mut()).await?;
    let snap_token = cx.token();
    let snap = a
        .snapshot_luns(std::slice::from_ref(&lun.wwn), &snap_token)
        .await?;
    let snap = snap
        .first()
        .ok_or_else(|| Why::Fail("snapshot-luns answered nothing".into()))?;
    let (name, token) = (cx.name("clone"), cx.token());
    let first = a.clone_snapshot(&snap.id, &name, &token).await?;
    let second = a.clone_snapshot(&snap.id, &name, &token).await?;
    claim!(
        first.wwn == second.wwn,
        "the repeat answered LUN {}, the first call {}",
        second.wwn,
        first.wwn
    );
    if count {
        let n = a
            .list_luns()
            .await?
            .iter()
            .filter(|l| l.name == name)
            .count();
        claim!(n == 1, "{n} clones exist after one token was used twice");
    }
    Ok(())
}

async fn create_vm_twice(cx: &mut Cx, count: bool, fresh_session: bool) -> Res {
    let mut h = cx.hv().await?;
    let spec = VmSpec {
        hardware: Default::default(),
        name: cx.name("vm"),
        host_id: cx.host().await?,
        devices: vec![],
    };
    let token = cx.token();
    let first = h.create_vm(&spec, &token).await?;
    if fresh_session {
        h = cx.hv().await?;
    }
    let second = h.create_vm(&spec, &token).await?;
    claim!(
        first.id == second.id,
        "the repeat answered VM {}, the first call {}",
        second.id,
        first.id
    );
    if count {
        let n = h
            .list_vms()
            .await?
            .iter()
            .filter(|v| v.name == spec.name)
            .count();
        claim!(
            n == 1,
            "{n} VMs named {} exist after one token was used twice",
            spec.name
        );
    }
    Ok(())
}

async fn add_disk_twice(cx: &mut Cx, count: bool) -> Res {
    let mut h = cx.hv().await?;
    let vm = cx.new_vm(h.as_mut(), 0).await?;
    let token = cx.token();
    let disk = NewDisk {
        capacity: CAP,
        mount_point: "/added".into(),
    };
    let first = h.add_disk(&vm.id, &disk, &token).await?;
    let second = h.add_disk(&vm.id, &disk, &token).await?;
    claim!(
        first.id == second.id,
        "the repeat answered device {}, the first call {}",
        second.id,
        first.id
    );
    if count {
        let n = h.get_vm(&vm.id).await?.devices.len();
        claim!(
            n == 1,
            "the VM has {n} devices after one add-disk token was used twice"
        );
    }
    Ok(())
}

async fn attach_twice(cx: &mut Cx, count: bool) -> Res {
    let mut h = cx.hv().await?;
    let source = cx.new_vm(h.as_mut(), 1).await?;
    let proxy = cx.new_vm(h.as_mut(), 0).await?;
    let snap_token = cx.token();
    let snap = h
        .snapshot_disks(&source.id, &[source.devices[0].id.clone()], &snap_token)
        .await?;
    let snap = snap
        .first()
        .ok_or_else(|| Why::Fail("snapshot-disks answered nothing".into()))?;
    let token = cx.token();
    let first = h
        .attach_snapshot(&proxy.id, &source.id, &snap.id, "/attached", &token)
        .await?;
    cx.attachments.push((proxy.id.clone(), first.id.clone()));
    let second = h
        .attach_snapshot(&proxy.id, &source.id, &snap.id, "/attached", &token)
        .await?;
    cx.attachments.push((proxy.id.clone(), second.id.clone()));
    claim!(
        first.id == second.id,
        "the repeat answered device {}, the first call {}",
        second.id,
        first.id
    );
    if count {
        let n = h.get_vm(&proxy.id).await?.devices.len();
        claim!(
            n == 1,
            "the proxy has {n} devices after one attach token was used twice"
        );
    }
    Ok(())
}

async fn map_lun_twice(cx: &mut Cx, count: bool) -> Res {
    let mut a = cx.array().await?;
    let lun = cx.new_lun(a.as_mut()).await?;
    let host = cx.host().await?;
    a.expose(&lun.wwn, &host).await?;
    let mut h = cx.hv().await?;
    let vm = cx.new_vm(h.as_mut(), 0).await?;
    let mapping = LunMapping {
        lun: MappedLun {
            wwn: lun.wwn.clone(),
            mode: MappingMode::Physical,
        },
        capacity: lun.capacity,
        mount_point: "/lun".into(),
    };
    let token = cx.token();
    let first = h.map_lun(&vm.id, &mapping, &token).await?;
    let second = h.map_lun(&vm.id, &mapping, &token).await?;
    claim!(
        first.id == second.id,
        "the repeat answered device {}, the first call {}",
        second.id,
        first.id
    );
    if count {
        let n = h
            .get_vm(&vm.id)
            .await?
            .devices
            .iter()
            .filter(|d| matches!(&d.backing, DeviceBacking::MappedLun(m) if m.wwn == lun.wwn))
            .count();
        claim!(
            n == 1,
            "LUN {} is mapped {n} times after one token was used twice",
            lun.wwn
        );
    }
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.token.create-lun.same",
        StorageArray,
        [Token],
        Nothing,
        "create-lun repeated with the same token answers the same WWN.",
        |cx| { create_lun_twice(cx, false, false, false).await }
    ),
    check!(
        "a.token.create-lun.once",
        StorageArray,
        [Token],
        Nothing,
        "create-lun repeated with the same token makes no second LUN.",
        |cx| { create_lun_twice(cx, true, false, false).await }
    ),
    check!(
        "a.token.create-lun.new-session",
        StorageArray,
        [Token],
        Nothing,
        "create-lun repeated with the same token in a new session answers the same WWN and makes no second LUN.",
        |cx| { create_lun_twice(cx, true, true, false).await }
    ),
    check!(
        "a.token.create-lun.other-name",
        StorageArray,
        [Token],
        Nothing,
        "create-lun retried with the same token but another name answers the first LUN and makes no other.",
        |cx| { create_lun_twice(cx, true, false, true).await }
    ),
    check!(
        "a.token.snapshot.same",
        StorageArray,
        [Token],
        Nothing,
        "snapshot-luns repeated with the same token answers the same snapshot ids.",
        |cx| { snapshot_twice(cx, false).await }
    ),
    check!(
        "a.token.snapshot.once",
        StorageArray,
        [Token],
        Nothing,
        "snapshot-luns repeated with the same token makes no second snapshot.",
        |cx| { snapshot_twice(cx, true).await }
    ),
    check!(
        "a.token.clone.same",
        StorageArray,
        [Token],
        Nothing,
        "clone-snapshot repeated with the same token answers the same WWN.",
        |cx| { clone_twice(cx, false).await }
    ),
    check!(
        "a.token.clone.once",
        StorageArray,
        [Token],
        Nothing,
        "clone-snapshot repeated with the same token makes no second clone.",
        |cx| { clone_twice(cx, true).await }
    ),
    check!(
        "a.token.empty",
        StorageArray,
        [Token, Garbage],
        Nothing,
        "create-lun with an empty token is refused with invalid and makes no LUN.",
        |cx| {
            let mut a = cx.array().await?;
            let name = cx.name("lun");
            refused(
                a.create_lun(&name, CAP, "").await,
                &[Kind::Invalid],
                "create-lun with token \"\"",
            )?;
            let n = a
                .list_luns()
                .await?
                .iter()
                .filter(|l| l.name == name)
                .count();
            claim!(n == 0, "the refused call made a LUN anyway");
            Ok(())
        }
    ),
    check!(
        "h.token.create-vm.same",
        Hypervisor,
        [Token],
        Nothing,
        "create-vm repeated with the same token answers the same VM id.",
        |cx| { create_vm_twice(cx, false, false).await }
    ),
    check!(
        "h.token.create-vm.once",
        Hypervisor,
        [Token],
        Nothing,
        "create-vm repeated with the same token makes no second VM.",
        |cx| { create_vm_twice(cx, true, false).await }
    ),
    check!(
        "h.token.create-vm.new-session",
        Hypervisor,
        [Token],
        Nothing,
        "create-vm repeated with the same token in a new session answers the same VM and makes no second one.",
        |cx| { create_vm_twice(cx, true, true).await }
    ),
    check!(
        "h.token.add-disk.same",
        Hypervisor,
        [Token],
        Nothing,
        "add-disk repeated with the same token answers the same device id.",
        |cx| { add_disk_twice(cx, false).await }
    ),
    check!(
        "h.token.add-disk.once",
        Hypervisor,
        [Token],
        Nothing,
        "add-disk repeated with the same token adds no second disk.",
        |cx| { add_disk_twice(cx, true).await }
    ),
    check!(
        "h.token.snapshot.same",
        Hypervisor,
        [Token],
        Nothing,
        "snapshot-disks repeated with the same token answers the same snapshot ids.",
        |cx| { snapshot_twice(cx, false).await }
    ),
    check!(
        "h.token.snapshot.once",
        Hypervisor,
        [Token],
        Nothing,
        "snapshot-disks repeated with the same token makes no second snapshot.",
        |cx| { snapshot_twice(cx, true).await }
    ),
    check!(
        "h.token.attach.same",
        Hypervisor,
        [Token],
        Nothing,
        "attach-snapshot repeated with the same token answers the same device id.",
        |cx| { attach_twice(cx, false).await }
    ),
    check!(
        "h.token.attach.once",
        Hypervisor,
        [Token],
        Nothing,
        "attach-snapshot repeated with the same token attaches no second device.",
        |cx| { attach_twice(cx, true).await }
    ),
    check!(
        "h.token.map-lun.same",
        Hypervisor,
        [Token],
        Array,
        "map-lun repeated with the same token answers the same device id.",
        |cx| { map_lun_twice(cx, false).await }
    ),
    check!(
        "h.token.map-lun.once",
        Hypervisor,
        [Token],
        Array,
        "map-lun repeated with the same token maps the LUN once.",
        |cx| { map_lun_twice(cx, true).await }
    ),
    check!(
        "h.token.empty",
        Hypervisor,
        [Token, Garbage],
        Nothing,
        "create-vm with an empty token is refused with invalid and makes no VM.",
        |cx| {
            let mut h = cx.hv().await?;
            let spec = VmSpec {
                hardware: Default::default(),
                name: cx.name("vm"),
                host_id: cx.host().await?,
                devices: vec![],
            };
            refused(
                h.create_vm(&spec, "").await,
                &[Kind::Invalid],
                "create-vm with token \"\"",
            )?;
            let n = h
                .list_vms()
                .await?
                .iter()
                .filter(|v| v.name == spec.name)
                .count();
            claim!(n == 0, "the refused call made a VM anyway");
            Ok(())
        }
    ),
];
