//! Creating, listing and describing things, and bytes written reading back.

use crate::model::{DeviceBacking, NewDisk, PowerState};

use super::cx::CAP;
use super::support::{REGIONS, first_difference, pattern};
use super::{Check, Cx, Res, check, claim};

async fn reads_zero(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let bytes = s.read(&dev, None, 0, CAP).await?;
    claim!(
        bytes.len() as u64 == CAP,
        "read {} of {CAP} bytes",
        bytes.len()
    );
    claim!(
        bytes.iter().all(|b| *b == 0),
        "a new device holds non-zero bytes (first at {})",
        bytes.iter().position(|b| *b != 0).unwrap_or(0)
    );
    Ok(())
}

async fn round_trip(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    for (i, (offset, len)) in REGIONS.iter().enumerate() {
        s.write(&dev, *offset, &pattern(i as u64 + 1, *len)).await?;
    }
    for (i, (offset, len)) in REGIONS.iter().enumerate() {
        let want = pattern(i as u64 + 1, *len);
        let got = s.read(&dev, None, *offset, *len as u64).await?;
        claim!(
            got == want,
            "bytes written at {offset} read back differently ({})",
            first_difference(&got, &want)
        );
    }
    Ok(())
}

async fn other_session(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let data = pattern(7, 100_000);
    s.write(&dev, 12_345, &data).await?;
    drop(s);
    let mut t = cx.sess().await?;
    let got = t.read(&dev, None, 12_345, data.len() as u64).await?;
    claim!(
        got == data,
        "another session reads different bytes ({})",
        first_difference(&got, &data)
    );
    Ok(())
}

async fn sizes(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let r = s.reader(&dev, None).await?;
    let size = s.dp().reader_size(&r).await?;
    s.dp().close_reader(r).await?;
    claim!(
        size == CAP,
        "reader-size answered {size}, capacity is {CAP}"
    );
    let w = s.writer(&dev).await?;
    let size = s.dp().writer_size(&w).await?;
    s.dp().close_writer(w).await?;
    claim!(
        size == CAP,
        "writer-size answered {size}, capacity is {CAP}"
    );
    Ok(())
}

async fn overwrite(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let mut want = pattern(3, 200_000);
    s.write(&dev, 0, &want).await?;
    let patch = pattern(4, 10_001);
    s.write(&dev, 65_530, &patch).await?;
    want[65_530..65_530 + patch.len()].copy_from_slice(&patch);
    let got = s.read(&dev, None, 0, want.len() as u64).await?;
    claim!(
        got == want,
        "after an overwrite the region reads wrong ({})",
        first_difference(&got, &want)
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.basic.list-luns",
        StorageArray,
        [Basic],
        Nothing,
        "list-luns answers, and every LUN it lists has a well-formed WWN.",
        |cx| {
            let mut a = cx.array().await?;
            for lun in a.list_luns().await? {
                claim!(
                    tidemark_names::check_wwn(&lun.wwn).is_ok(),
                    "LUN {} has a malformed WWN {:?}",
                    lun.name,
                    lun.wwn
                );
            }
            Ok(())
        }
    ),
    check!(
        "a.basic.create",
        StorageArray,
        [Basic],
        Nothing,
        "create-lun answers a LUN with the requested name and capacity and a well-formed WWN.",
        |cx| {
            let mut a = cx.array().await?;
            let (name, token) = (cx.name("lun"), cx.token());
            let lun = a.create_lun(&name, CAP, &token).await?;
            claim!(lun.name == name, "asked for name {name}, got {}", lun.name);
            claim!(
                lun.capacity == CAP,
                "asked for {CAP} bytes, got {}",
                lun.capacity
            );
            claim!(
                tidemark_names::check_wwn(&lun.wwn).is_ok(),
                "malformed WWN {:?}",
                lun.wwn
            );
            Ok(())
        }
    ),
    check!(
        "a.basic.listed",
        StorageArray,
        [Basic],
        Nothing,
        "A created LUN appears in list-luns with its name and capacity.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let listed = a.list_luns().await?;
            let found = listed.iter().find(|l| l.wwn == lun.wwn);
            claim!(found.is_some(), "LUN {} is not in list-luns", lun.wwn);
            let found = found.unwrap();
            claim!(
                found.name == lun.name && found.capacity == lun.capacity,
                "list-luns shows {found:?}, create-lun answered {lun:?}"
            );
            Ok(())
        }
    ),
    check!(
        "a.basic.get",
        StorageArray,
        [Basic],
        Nothing,
        "get-lun of a created LUN answers what create-lun answered.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let got = a.get_lun(&lun.wwn).await?;
            claim!(got == lun, "get-lun answered {got:?}, create-lun {lun:?}");
            Ok(())
        }
    ),
    check!(
        "a.basic.unexposed",
        StorageArray,
        [Basic],
        Nothing,
        "A new LUN is exposed to no host.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            claim!(
                lun.exposed_to.is_empty(),
                "a new LUN is exposed to {:?}",
                lun.exposed_to
            );
            Ok(())
        }
    ),
    check!(
        "a.basic.distinct",
        StorageArray,
        [Basic],
        Nothing,
        "Two LUNs created with different tokens have different WWNs.",
        |cx| {
            let mut a = cx.array().await?;
            let one = cx.new_lun(a.as_mut()).await?;
            let two = cx.new_lun(a.as_mut()).await?;
            claim!(one.wwn != two.wwn, "both LUNs got WWN {}", one.wwn);
            Ok(())
        }
    ),
    check!(
        "a.basic.expose",
        StorageArray,
        [Basic],
        Nothing,
        "expose adds the host to exposed-to once (twice is no change) and unexpose removes it.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            let host = cx.host().await?;
            a.expose(&lun.wwn, &host).await?;
            a.expose(&lun.wwn, &host).await?;
            let seen = a.get_lun(&lun.wwn).await?.exposed_to;
            claim!(
                seen == vec![host.clone()],
                "after exposing to {host} twice, exposed-to is {seen:?}"
            );
            a.unexpose(&lun.wwn, &host).await?;
            let seen = a.get_lun(&lun.wwn).await?.exposed_to;
            claim!(seen.is_empty(), "after unexpose, exposed-to is {seen:?}");
            Ok(())
        }
    ),
    check!(
        "a.basic.delete",
        StorageArray,
        [Basic],
        Nothing,
        "A deleted LUN is gone from list-luns and get-lun answers not-found for it.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            a.delete_lun(&lun.wwn).await?;
            let listed = a.list_luns().await?;
            claim!(
                !listed.iter().any(|l| l.wwn == lun.wwn),
                "deleted LUN {} is still listed",
                lun.wwn
            );
            super::support::refused(
                a.get_lun(&lun.wwn).await,
                &[super::support::Kind::NotFound],
                "get-lun of a deleted LUN",
            )
        }
    ),
    check!(
        "a.data.zero",
        StorageArray,
        [Data],
        Nothing,
        "A new LUN reads as zeroes over its whole capacity.",
        |cx| { reads_zero(cx).await }
    ),
    check!(
        "a.data.round-trip",
        StorageArray,
        [Data],
        Nothing,
        "Bytes written to a LUN at unaligned offsets read back the same.",
        |cx| { round_trip(cx).await }
    ),
    check!(
        "a.data.other-session",
        StorageArray,
        [Data],
        Nothing,
        "Bytes written and flushed to a LUN in one session read back the same in a new session.",
        |cx| { other_session(cx).await }
    ),
    check!(
        "a.data.sizes",
        StorageArray,
        [Data],
        Nothing,
        "reader-size and writer-size of a LUN answer its capacity.",
        |cx| { sizes(cx).await }
    ),
    check!(
        "a.data.overwrite",
        StorageArray,
        [Data],
        Nothing,
        "Overwriting part of a LUN's written region changes exactly the overwritten bytes.",
        |cx| { overwrite(cx).await }
    ),
    check!(
        "h.basic.hosts",
        Hypervisor,
        [Basic],
        Nothing,
        "list-hosts answers at least one host, with unique non-empty ids.",
        |cx| {
            let mut h = cx.hv().await?;
            let hosts = h.list_hosts().await?;
            claim!(!hosts.is_empty(), "no hosts");
            let mut ids: Vec<_> = hosts.iter().map(|h| h.id.as_str()).collect();
            claim!(ids.iter().all(|i| !i.is_empty()), "a host has an empty id");
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            claim!(ids.len() == n, "host ids repeat: {hosts:?}");
            Ok(())
        }
    ),
    check!(
        "h.basic.create",
        Hypervisor,
        [Basic],
        Nothing,
        "create-vm answers a VM with the requested name and host and each requested disk's capacity and mount point.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 2).await?;
            let host = cx.host().await?;
            claim!(
                cx.ours(&vm.name),
                "the VM is named {:?}, not as asked",
                vm.name
            );
            claim!(
                vm.host_id == host,
                "asked for host {host}, got {}",
                vm.host_id
            );
            for (i, mount) in ["/t1", "/t2"].iter().enumerate() {
                let d = vm.devices.iter().find(|d| d.mount_point == *mount);
                claim!(d.is_some(), "no device at {mount}: {:?}", vm.devices);
                let d = d.unwrap();
                claim!(
                    d.capacity == CAP,
                    "disk {i} has capacity {}, asked {CAP}",
                    d.capacity
                );
                claim!(
                    matches!(d.backing, DeviceBacking::VirtualDisk(_)),
                    "disk at {mount} is not a virtual disk: {:?}",
                    d.backing
                );
            }
            Ok(())
        }
    ),
    check!(
        "h.basic.listed",
        Hypervisor,
        [Basic],
        Nothing,
        "A created VM appears in list-vms, and get-vm answers what create-vm answered.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            claim!(
                h.list_vms().await?.iter().any(|v| v.id == vm.id),
                "VM {} is not in list-vms",
                vm.id
            );
            let got = h.get_vm(&vm.id).await?;
            claim!(got == vm, "get-vm answered {got:?}, create-vm {vm:?}");
            Ok(())
        }
    ),
    check!(
        "h.basic.add-disk",
        Hypervisor,
        [Basic],
        Nothing,
        "add-disk answers a new virtual disk of the requested capacity and mount point, and get-vm lists it.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            let token = cx.token();
            let disk = NewDisk {
                capacity: CAP * 2,
                mount_point: "/added".into(),
            };
            let d = h.add_disk(&vm.id, &disk, &token).await?;
            claim!(
                d.capacity == disk.capacity && d.mount_point == disk.mount_point,
                "add-disk answered {d:?}"
            );
            let got = h.get_vm(&vm.id).await?;
            claim!(
                got.devices.iter().any(|x| x.id == d.id),
                "get-vm does not list the new disk"
            );
            Ok(())
        }
    ),
    check!(
        "h.basic.power",
        Hypervisor,
        [Basic],
        Nothing,
        "power-on and power-off change the power state get-vm reports.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            h.power_on(&vm.id).await?;
            let on = h.get_vm(&vm.id).await?.power;
            claim!(on == PowerState::On, "after power-on the VM is {on}");
            h.power_off(&vm.id).await?;
            let off = h.get_vm(&vm.id).await?.power;
            claim!(off == PowerState::Off, "after power-off the VM is {off}");
            Ok(())
        }
    ),
    check!(
        "h.basic.quiesce",
        Hypervisor,
        [Basic],
        Nothing,
        "quiesce of a running VM holds its writes and unquiesce lets it go on (or quiesce answers unsupported); either way the VM is still powered on after.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            h.power_on(&vm.id).await?;
            match h.quiesce(&vm.id).await {
                Ok(()) => {
                    h.unquiesce(&vm.id).await?;
                    // A second unquiesce (a retried compensation) is harmless.
                    h.unquiesce(&vm.id).await?;
                }
                Err(e) => super::support::refused::<()>(
                    Err(e),
                    &[super::support::Kind::Unsupported],
                    "quiesce",
                )?,
            }
            let on = h.get_vm(&vm.id).await?.power;
            claim!(
                on == PowerState::On,
                "after quiesce and unquiesce the VM is {on}"
            );
            h.power_off(&vm.id).await?;
            Ok(())
        }
    ),
    check!(
        "h.basic.detach-own",
        Hypervisor,
        [Basic],
        Nothing,
        "detach-disk of a VM's own disk removes the disk from the VM.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 2).await?;
            let gone = vm.devices[1].id.clone();
            h.detach_disk(&vm.id, &gone).await?;
            let got = h.get_vm(&vm.id).await?;
            claim!(
                !got.devices.iter().any(|d| d.id == gone),
                "disk {gone} is still there after detach-disk"
            );
            claim!(
                got.devices.len() == 1,
                "the other disk went too: {:?}",
                got.devices
            );
            Ok(())
        }
    ),
    check!(
        "h.basic.delete",
        Hypervisor,
        [Basic],
        Nothing,
        "A deleted VM is gone from list-vms and get-vm answers not-found for it.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            h.delete_vm(&vm.id).await?;
            claim!(
                !h.list_vms().await?.iter().any(|v| v.id == vm.id),
                "deleted VM {} is still listed",
                vm.id
            );
            super::support::refused(
                h.get_vm(&vm.id).await,
                &[super::support::Kind::NotFound],
                "get-vm of a deleted VM",
            )
        }
    ),
    check!(
        "h.data.zero",
        Hypervisor,
        [Data],
        Nothing,
        "A new virtual disk reads as zeroes over its whole capacity.",
        |cx| { reads_zero(cx).await }
    ),
    check!(
        "h.data.round-trip",
        Hypervisor,
        [Data],
        Nothing,
        "Bytes written to a virtual disk at unaligned offsets read back the same.",
        |cx| { round_trip(cx).await }
    ),
    check!(
        "h.data.other-session",
        Hypervisor,
        [Data],
        Nothing,
        "Bytes written and flushed to a virtual disk in one session read back the same in a new session.",
        |cx| { other_session(cx).await }
    ),
    check!(
        "h.data.sizes",
        Hypervisor,
        [Data],
        Nothing,
        "reader-size and writer-size of a virtual disk answer its capacity.",
        |cx| { sizes(cx).await }
    ),
    check!(
        "h.data.overwrite",
        Hypervisor,
        [Data],
        Nothing,
        "Overwriting part of a virtual disk's written region changes exactly the overwritten bytes.",
        |cx| { overwrite(cx).await }
    ),
];
