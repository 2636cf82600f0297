//! Malformed arguments: generated garbage strings, zero and huge sizes, ranges past the
//! end. The answer is `invalid` (or `not-found` for an id that names nothing); never a trap,
//! never a success, and nothing is made.

use crate::model::{LunMapping, MappedLun, MappingMode, NewDisk, VmSpec};

use super::cx::CAP;
use super::support::{Kind, garbage, refused};
use super::{Check, Cx, Res, check, claim};

const NF_OR_INVALID: &[Kind] = &[Kind::NotFound, Kind::Invalid];
const INVALID: &[Kind] = &[Kind::Invalid];
/// Seed of the generated garbage (fixed, so a failure reproduces).
const SEED: u64 = 0x71de_0001;

/// A short, printable form of a garbage string for messages.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(24)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 24 {
        out.push_str(&format!("… ({} bytes)", s.len()));
    }
    out
}

async fn read_huge(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let r = s.reader(&dev, None).await?;
    for (offset, len) in [
        (0, u64::MAX),
        (CAP - 10, u64::MAX),
        (u64::MAX, 1),
        (u64::MAX - 5, 100),
    ] {
        match s.dp().read(&r, offset, len).await {
            Ok(bytes) => {
                let most = CAP.saturating_sub(offset);
                claim!(
                    bytes.len() as u64 <= most,
                    "read of {len} bytes at {offset} answered {} bytes (the device has {most} from there)",
                    bytes.len()
                );
            }
            Err(e) => refused::<()>(Err(e), INVALID, &format!("read of {len} bytes at {offset}"))?,
        }
    }
    s.dp().close_reader(r).await?;
    Ok(())
}

async fn write_past_end(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let w = s.writer(&dev).await?;
    for (offset, len) in [(CAP - 100, 200usize), (CAP, 1), (u64::MAX - 10, 100)] {
        let data = vec![0xA5u8; len];
        refused(
            s.dp().write(&w, offset, &data).await,
            INVALID,
            &format!("write of {len} bytes at {offset} (capacity {CAP})"),
        )?;
    }
    s.dp().close_writer(w).await?;
    let tail = s.read(&dev, None, CAP - 100, 100).await?;
    claim!(
        tail.iter().all(|b| *b == 0),
        "a refused write past the end changed the last bytes of the device"
    );
    Ok(())
}

/// Runs `call` for every garbage string; each must answer one of `kinds`.
macro_rules! for_garbage {
    ($kinds:expr, $what:literal, |$g:ident| $call:expr) => {
        for $g in garbage(SEED) {
            let answer = $call;
            refused(answer, $kinds, &format!("{} {}", $what, shown(&$g)))?;
        }
    };
}

async fn array_ids(cx: &mut Cx) -> Res {
    let host = cx.host().await?;
    let mut a = cx.array().await?;
    for_garbage!(NF_OR_INVALID, "get-lun", |g| a.get_lun(&g).await);
    for_garbage!(NF_OR_INVALID, "delete-lun", |g| a.delete_lun(&g).await);
    for_garbage!(NF_OR_INVALID, "expose", |g| a.expose(&g, &host).await);
    for_garbage!(NF_OR_INVALID, "open-reader", |g| a
        .open_reader(&g, None)
        .await);
    for_garbage!(NF_OR_INVALID, "open-writer", |g| a.open_writer(&g).await);
    Ok(())
}

async fn array_snapshot_ids(cx: &mut Cx) -> Res {
    let mut a = cx.array().await?;
    let lun = cx.new_lun(a.as_mut()).await?;
    let token = cx.token();
    let name = cx.name("clone");
    for_garbage!(NF_OR_INVALID, "delete-snapshot", |g| a
        .delete_snapshot(&g)
        .await);
    for_garbage!(NF_OR_INVALID, "clone-snapshot", |g| a
        .clone_snapshot(&g, &name, &token)
        .await);
    for_garbage!(NF_OR_INVALID, "revert-lun to", |g| a
        .revert_lun(&lun.wwn, &g, &token)
        .await);
    for_garbage!(NF_OR_INVALID, "open-reader of snapshot", |g| a
        .open_reader(&lun.wwn, Some(&g))
        .await);
    let n = a
        .list_luns()
        .await?
        .iter()
        .filter(|l| l.name == name)
        .count();
    claim!(n == 0, "a refused clone made a LUN");
    Ok(())
}

async fn vm_ids(cx: &mut Cx) -> Res {
    let mut h = cx.hv().await?;
    let token = cx.token();
    for_garbage!(NF_OR_INVALID, "get-vm", |g| h.get_vm(&g).await);
    for_garbage!(NF_OR_INVALID, "delete-vm", |g| h.delete_vm(&g).await);
    for_garbage!(NF_OR_INVALID, "power-on", |g| h.power_on(&g).await);
    for_garbage!(NF_OR_INVALID, "list-snapshots", |g| h
        .list_snapshots(&g)
        .await);
    for_garbage!(NF_OR_INVALID, "snapshot-disks of VM", |g| h
        .snapshot_disks(&g, &["dev-1".into()], &token)
        .await);
    Ok(())
}

async fn device_ids(cx: &mut Cx) -> Res {
    let mut h = cx.hv().await?;
    let vm = cx.new_vm(h.as_mut(), 1).await?;
    let token = cx.token();
    for_garbage!(NF_OR_INVALID, "open-reader of device", |g| h
        .open_reader(&vm.id, &g, None)
        .await);
    for_garbage!(NF_OR_INVALID, "open-writer of device", |g| h
        .open_writer(&vm.id, &g)
        .await);
    for_garbage!(NF_OR_INVALID, "detach-disk", |g| h
        .detach_disk(&vm.id, &g)
        .await);
    for_garbage!(NF_OR_INVALID, "snapshot-disks of device", |g| h
        .snapshot_disks(&vm.id, std::slice::from_ref(&g), &token)
        .await);
    for_garbage!(NF_OR_INVALID, "revert-disks to", |g| h
        .revert_disks(&vm.id, std::slice::from_ref(&g), &token)
        .await);
    let n = h.list_snapshots(&vm.id).await?.len();
    claim!(n == 0, "refused snapshot calls left {n} snapshot(s)");
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.garbage.lun-ids",
        StorageArray,
        [Garbage],
        Nothing,
        "get-lun, delete-lun, expose, open-reader and open-writer of generated garbage WWNs answer not-found or invalid, never trapping.",
        |cx| { array_ids(cx).await }
    ),
    check!(
        "a.garbage.snapshot-ids",
        StorageArray,
        [Garbage],
        Nothing,
        "delete-snapshot, clone-snapshot, revert-lun and open-reader with generated garbage snapshot ids answer not-found or invalid and make nothing.",
        |cx| { array_snapshot_ids(cx).await }
    ),
    check!(
        "a.garbage.lun-name",
        StorageArray,
        [Garbage],
        Nothing,
        "create-lun with an empty, blank or 64 KiB name answers invalid and makes no LUN.",
        |cx| {
            let mut a = cx.array().await?;
            let before = a.list_luns().await?.len();
            for name in [String::new(), "   ".to_string(), "n".repeat(64 * 1024)] {
                let token = cx.token();
                refused(
                    a.create_lun(&name, CAP, &token).await,
                    INVALID,
                    &format!("create-lun named {}", shown(&name)),
                )?;
            }
            let after = a.list_luns().await?.len();
            claim!(
                after == before,
                "refused calls made {} LUN(s)",
                after.saturating_sub(before)
            );
            Ok(())
        }
    ),
    check!(
        "a.garbage.zero-capacity",
        StorageArray,
        [Garbage],
        Nothing,
        "create-lun of 0 bytes answers invalid.",
        |cx| {
            let mut a = cx.array().await?;
            let (name, token) = (cx.name("lun"), cx.token());
            refused(
                a.create_lun(&name, 0, &token).await,
                INVALID,
                "create-lun of 0 bytes",
            )
        }
    ),
    check!(
        "a.garbage.huge-capacity",
        StorageArray,
        [Garbage],
        Nothing,
        "create-lun of 2^63 or 2^64-1 bytes answers invalid.",
        |cx| {
            let mut a = cx.array().await?;
            for capacity in [1u64 << 63, u64::MAX] {
                let (name, token) = (cx.name("lun"), cx.token());
                refused(
                    a.create_lun(&name, capacity, &token).await,
                    INVALID,
                    &format!("create-lun of {capacity} bytes"),
                )?;
            }
            Ok(())
        }
    ),
    check!(
        "a.garbage.empty-host",
        StorageArray,
        [Garbage],
        Nothing,
        "expose to an empty host id answers invalid and exposes nothing.",
        |cx| {
            let mut a = cx.array().await?;
            let lun = cx.new_lun(a.as_mut()).await?;
            refused(a.expose(&lun.wwn, "").await, INVALID, "expose to host \"\"")?;
            let seen = a.get_lun(&lun.wwn).await?.exposed_to;
            claim!(
                seen.is_empty(),
                "exposed to {seen:?} after a refused expose"
            );
            Ok(())
        }
    ),
    check!(
        "a.garbage.empty-group",
        StorageArray,
        [Garbage],
        Nothing,
        "snapshot-luns of no LUNs answers invalid.",
        |cx| {
            let mut a = cx.array().await?;
            let token = cx.token();
            refused(
                a.snapshot_luns(&[], &token).await,
                INVALID,
                "snapshot-luns of []",
            )
        }
    ),
    check!(
        "a.garbage.read-huge",
        StorageArray,
        [Garbage],
        Nothing,
        "Reads of a LUN with lengths or offsets near 2^64 answer invalid or at most the bytes up to the end, never trapping.",
        |cx| { read_huge(cx).await }
    ),
    check!(
        "a.garbage.write-past-end",
        StorageArray,
        [Garbage],
        Nothing,
        "Writes to a LUN running past its end (or overflowing 2^64) answer invalid and change nothing.",
        |cx| { write_past_end(cx).await }
    ),
    check!(
        "h.garbage.vm-ids",
        Hypervisor,
        [Garbage],
        Nothing,
        "get-vm, delete-vm, power-on, list-snapshots and snapshot-disks of generated garbage VM ids answer not-found or invalid, never trapping.",
        |cx| { vm_ids(cx).await }
    ),
    check!(
        "h.garbage.device-ids",
        Hypervisor,
        [Garbage],
        Nothing,
        "open-reader, open-writer, detach-disk, snapshot-disks and revert-disks with generated garbage device or snapshot ids answer not-found or invalid and snapshot nothing.",
        |cx| { device_ids(cx).await }
    ),
    check!(
        "h.garbage.vm-name",
        Hypervisor,
        [Garbage],
        Nothing,
        "create-vm with an empty, blank or 64 KiB name answers invalid and makes no VM.",
        |cx| {
            let host = cx.host().await?;
            let mut h = cx.hv().await?;
            let before = h.list_vms().await?.len();
            for name in [String::new(), "   ".to_string(), "n".repeat(64 * 1024)] {
                let token = cx.token();
                let spec = VmSpec {
                    hardware: Default::default(),
                    name: name.clone(),
                    host_id: host.clone(),
                    devices: vec![],
                };
                refused(
                    h.create_vm(&spec, &token).await,
                    INVALID,
                    &format!("create-vm named {}", shown(&name)),
                )?;
            }
            let after = h.list_vms().await?.len();
            claim!(
                after == before,
                "refused calls made {} VM(s)",
                after.saturating_sub(before)
            );
            Ok(())
        }
    ),
    check!(
        "h.garbage.disk-size",
        Hypervisor,
        [Garbage],
        Nothing,
        "add-disk of 0, 2^63 or 2^64-1 bytes answers invalid and adds no disk.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 0).await?;
            for capacity in [0, 1u64 << 63, u64::MAX] {
                let token = cx.token();
                let disk = NewDisk {
                    capacity,
                    mount_point: "/big".into(),
                };
                refused(
                    h.add_disk(&vm.id, &disk, &token).await,
                    INVALID,
                    &format!("add-disk of {capacity} bytes"),
                )?;
            }
            let n = h.get_vm(&vm.id).await?.devices.len();
            claim!(n == 0, "refused calls added {n} disk(s)");
            Ok(())
        }
    ),
    check!(
        "h.garbage.mount-point",
        Hypervisor,
        [Garbage],
        Nothing,
        "add-disk at a mount point that is neither a drive letter nor a clean absolute path answers invalid.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 0).await?;
            let mut tried = 0;
            for mount in garbage(SEED)
                .into_iter()
                .chain(["/a/../b".to_string(), "relative/x".into()])
            {
                if tidemark_names::check_mount_point(&mount).is_ok() {
                    continue;
                }
                tried += 1;
                let token = cx.token();
                let disk = NewDisk {
                    capacity: CAP,
                    mount_point: mount.clone(),
                };
                refused(
                    h.add_disk(&vm.id, &disk, &token).await,
                    INVALID,
                    &format!("add-disk at {}", shown(&mount)),
                )?;
            }
            claim!(tried > 10, "suite bug: too few malformed mount points");
            Ok(())
        }
    ),
    check!(
        "h.garbage.empty-group",
        Hypervisor,
        [Garbage],
        Nothing,
        "snapshot-disks of no devices answers invalid.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 1).await?;
            let token = cx.token();
            refused(
                h.snapshot_disks(&vm.id, &[], &token).await,
                INVALID,
                "snapshot-disks of []",
            )
        }
    ),
    check!(
        "h.garbage.map-wwn",
        Hypervisor,
        [Garbage],
        Nothing,
        "map-lun of a malformed WWN answers invalid and maps nothing.",
        |cx| {
            let mut h = cx.hv().await?;
            let vm = cx.new_vm(h.as_mut(), 0).await?;
            for wwn in ["", "naa.", "naa.zz", "eui.0123456789abcdef", "naa.6001"] {
                let token = cx.token();
                let mapping = LunMapping {
                    lun: MappedLun {
                        wwn: wwn.into(),
                        mode: MappingMode::Physical,
                    },
                    capacity: CAP,
                    mount_point: "/lun".into(),
                };
                refused(
                    h.map_lun(&vm.id, &mapping, &token).await,
                    INVALID,
                    &format!("map-lun of WWN {wwn:?}"),
                )?;
            }
            let n = h.get_vm(&vm.id).await?.devices.len();
            claim!(n == 0, "refused calls mapped {n} device(s)");
            Ok(())
        }
    ),
    check!(
        "h.garbage.read-huge",
        Hypervisor,
        [Garbage],
        Nothing,
        "Reads of a virtual disk with lengths or offsets near 2^64 answer invalid or at most the bytes up to the end, never trapping.",
        |cx| { read_huge(cx).await }
    ),
    check!(
        "h.garbage.write-past-end",
        Hypervisor,
        [Garbage],
        Nothing,
        "Writes to a virtual disk running past its end (or overflowing 2^64) answer invalid and change nothing.",
        |cx| { write_past_end(cx).await }
    ),
];
