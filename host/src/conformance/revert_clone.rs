//! Revert brings back a snapshot's bytes; a clone reads equal to its snapshot and lives on
//! its own. (None of these write a device and then read its snapshot: that is isolation's.)

use super::cx::CAP;
use super::support::{Dev, Kind, Sess, first_difference, pattern, refused, snapshot_of};
use super::{Check, Cx, Res, Why, check, claim};

/// A device with `before` at 0 and a snapshot of it, then `after` written over it and
/// more bytes at 2 MiB: (session, device, snapshot id, before).
async fn snapshotted_then_changed(cx: &mut Cx) -> Result<(Sess, Dev, String, Vec<u8>), Why> {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let before = pattern(61, 200_000);
    s.write(&dev, 0, &before).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    s.write(&dev, 0, &pattern(62, 200_000)).await?;
    s.write(&dev, 2 << 20, &pattern(63, 10_000)).await?;
    Ok((s, dev, snap, before))
}

async fn revert_bytes(cx: &mut Cx) -> Res {
    let (mut s, dev, snap, before) = snapshotted_then_changed(cx).await?;
    let token = cx.token();
    s.revert(&dev, &snap, &token).await?;
    let got = s.read(&dev, None, 0, before.len() as u64).await?;
    claim!(
        got == before,
        "after revert the device reads other bytes ({})",
        first_difference(&got, &before)
    );
    let later = s.read(&dev, None, 2 << 20, 10_000).await?;
    claim!(
        later.iter().all(|b| *b == 0),
        "bytes first written after the snapshot survive the revert"
    );
    Ok(())
}

async fn revert_keeps_snapshot(cx: &mut Cx) -> Res {
    let (mut s, dev, snap, before) = snapshotted_then_changed(cx).await?;
    let token = cx.token();
    s.revert(&dev, &snap, &token).await?;
    claim!(
        s.snapshots_of(&dev).await?.iter().any(|l| l.id == snap),
        "the snapshot is gone after reverting to it"
    );
    let got = s.read(&dev, Some(&snap), 0, before.len() as u64).await?;
    claim!(
        got == before,
        "after revert the snapshot reads other bytes ({})",
        first_difference(&got, &before)
    );
    Ok(())
}

async fn revert_then_write(cx: &mut Cx) -> Res {
    let (mut s, dev, snap, _) = snapshotted_then_changed(cx).await?;
    let token = cx.token();
    s.revert(&dev, &snap, &token).await?;
    let data = pattern(64, 33_333);
    s.write(&dev, 100_000, &data).await?;
    let got = s.read(&dev, None, 100_000, data.len() as u64).await?;
    claim!(
        got == data,
        "writes after a revert read back wrong ({})",
        first_difference(&got, &data)
    );
    Ok(())
}

/// A LUN with bytes, its snapshot and a clone of it: (session, LUN, snapshot, clone WWN, bytes).
async fn cloned(
    cx: &mut Cx,
) -> Result<(Sess, String, String, crate::model::LunInfo, Vec<u8>), Why> {
    let mut a = cx.array().await?;
    let lun = cx.new_lun(a.as_mut()).await?;
    let mut s = Sess::A(a);
    let dev = Dev::Lun(lun.wwn.clone());
    let data = pattern(71, 500_000);
    s.write(&dev, 777, &data).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    let (name, token) = (cx.name("clone"), cx.token());
    let Sess::A(a) = &mut s else { unreachable!() };
    let clone = a.clone_snapshot(&snap, &name, &token).await?;
    Ok((s, lun.wwn, snap, clone, data))
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.revert.bytes",
        StorageArray,
        [Revert],
        Nothing,
        "revert-lun brings back the snapshot's bytes, including zeroes where the LUN was first written after it.",
        |cx| { revert_bytes(cx).await }
    ),
    check!(
        "a.revert.keeps-snapshot",
        StorageArray,
        [Revert],
        Nothing,
        "After revert-lun the snapshot is still listed and reads the same bytes.",
        |cx| { revert_keeps_snapshot(cx).await }
    ),
    check!(
        "a.revert.then-write",
        StorageArray,
        [Revert],
        Nothing,
        "After revert-lun new writes to the LUN read back.",
        |cx| { revert_then_write(cx).await }
    ),
    check!(
        "a.revert.wrong-lun",
        StorageArray,
        [Revert, Refusal],
        Nothing,
        "revert-lun of one LUN to another LUN's snapshot is refused and leaves the LUN unchanged.",
        |cx| {
            let mut a = cx.array().await?;
            let one = cx.new_lun(a.as_mut()).await?;
            let two = cx.new_lun(a.as_mut()).await?;
            let mut s = Sess::A(a);
            let (d1, d2) = (Dev::Lun(one.wwn.clone()), Dev::Lun(two.wwn.clone()));
            let data = pattern(65, 4096);
            s.write(&d1, 0, &data).await?;
            let token = cx.token();
            let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&d2), &token).await?, &d2)?
                .id
                .clone();
            let token = cx.token();
            refused(
                s.revert(&d1, &snap, &token).await,
                &[Kind::Invalid, Kind::NotFound, Kind::Conflict],
                "revert-lun to another LUN's snapshot",
            )?;
            let got = s.read(&d1, None, 0, 4096).await?;
            claim!(got == data, "the refused revert changed the LUN");
            Ok(())
        }
    ),
    check!(
        "a.clone.equal",
        StorageArray,
        [Revert],
        Nothing,
        "A clone reads equal to its snapshot over the whole capacity.",
        |cx| {
            let (mut s, wwn, snap, clone, _) = cloned(cx).await?;
            let from_snapshot = s.read(&Dev::Lun(wwn), Some(&snap), 0, CAP).await?;
            let from_clone = s.read(&Dev::Lun(clone.wwn), None, 0, CAP).await?;
            claim!(
                from_clone == from_snapshot,
                "the clone differs from its snapshot ({})",
                first_difference(&from_clone, &from_snapshot)
            );
            Ok(())
        }
    ),
    check!(
        "a.clone.reports",
        StorageArray,
        [Basic],
        Nothing,
        "clone-snapshot answers a new LUN with the requested name, the source's capacity and its own WWN, listed by list-luns.",
        |cx| {
            let (mut s, wwn, _, clone, _) = cloned(cx).await?;
            claim!(
                cx.ours(&clone.name),
                "the clone is named {:?}, not as asked",
                clone.name
            );
            claim!(
                clone.capacity == CAP,
                "the clone has capacity {}, the source {CAP}",
                clone.capacity
            );
            claim!(clone.wwn != wwn, "the clone has its source's WWN");
            let Sess::A(a) = &mut s else { unreachable!() };
            claim!(
                a.list_luns().await?.iter().any(|l| l.wwn == clone.wwn),
                "the clone is not listed"
            );
            Ok(())
        }
    ),
    check!(
        "a.clone.independent",
        StorageArray,
        [Revert],
        Nothing,
        "Writing a clone changes neither its source LUN nor its snapshot.",
        |cx| {
            let (mut s, wwn, snap, clone, data) = cloned(cx).await?;
            s.write(&Dev::Lun(clone.wwn.clone()), 777, &pattern(72, data.len()))
                .await?;
            let source = s
                .read(&Dev::Lun(wwn.clone()), None, 777, data.len() as u64)
                .await?;
            claim!(
                source == data,
                "writing the clone changed the source ({})",
                first_difference(&source, &data)
            );
            let snapshot = s
                .read(&Dev::Lun(wwn), Some(&snap), 777, data.len() as u64)
                .await?;
            claim!(
                snapshot == data,
                "writing the clone changed the snapshot ({})",
                first_difference(&snapshot, &data)
            );
            Ok(())
        }
    ),
    check!(
        "a.clone.source-writes",
        StorageArray,
        [Revert],
        Nothing,
        "Writing the source LUN after cloning does not change the clone.",
        |cx| {
            let (mut s, wwn, _, clone, data) = cloned(cx).await?;
            s.write(&Dev::Lun(wwn), 777, &pattern(73, data.len()))
                .await?;
            let got = s
                .read(&Dev::Lun(clone.wwn), None, 777, data.len() as u64)
                .await?;
            claim!(
                got == data,
                "writing the source changed the clone ({})",
                first_difference(&got, &data)
            );
            Ok(())
        }
    ),
    check!(
        "a.clone.outlives-snapshot",
        StorageArray,
        [Revert],
        Nothing,
        "Deleting a clone's snapshot either succeeds or is refused with conflict, and the clone keeps its bytes.",
        |cx| {
            let (mut s, _, snap, clone, data) = cloned(cx).await?;
            let Sess::A(a) = &mut s else { unreachable!() };
            match a.delete_snapshot(&snap).await {
                Ok(()) => {}
                Err(e) => refused::<()>(
                    Err(e),
                    &[Kind::Conflict],
                    "delete-snapshot of a cloned snapshot",
                )?,
            }
            let got = s
                .read(&Dev::Lun(clone.wwn), None, 777, data.len() as u64)
                .await?;
            claim!(
                got == data,
                "the clone lost its bytes ({})",
                first_difference(&got, &data)
            );
            Ok(())
        }
    ),
    check!(
        "h.revert.bytes",
        Hypervisor,
        [Revert],
        Nothing,
        "revert-disks of a powered-off VM brings back the snapshot's bytes, including zeroes where the disk was first written after it.",
        |cx| { revert_bytes(cx).await }
    ),
    check!(
        "h.revert.keeps-snapshot",
        Hypervisor,
        [Revert],
        Nothing,
        "After revert-disks the snapshot is still listed and reads the same bytes.",
        |cx| { revert_keeps_snapshot(cx).await }
    ),
    check!(
        "h.revert.then-write",
        Hypervisor,
        [Revert],
        Nothing,
        "After revert-disks new writes to the disk read back.",
        |cx| { revert_then_write(cx).await }
    ),
    check!(
        "h.revert.powered-on",
        Hypervisor,
        [Revert, Refusal],
        Nothing,
        "revert-disks of a powered-on VM is refused with conflict, or reverts it; it never leaves a mix.",
        |cx| {
            let (mut s, dev, snap, before) = snapshotted_then_changed(cx).await?;
            let Dev::Disk { vm, .. } = &dev else {
                unreachable!()
            };
            let Sess::H(h) = &mut s else { unreachable!() };
            h.power_on(vm).await?;
            let token = cx.token();
            let answer = h
                .revert_disks(vm, std::slice::from_ref(&snap), &token)
                .await;
            let vm = vm.clone();
            let Sess::H(h) = &mut s else { unreachable!() };
            h.power_off(&vm).await?;
            let got = s.read(&dev, None, 0, before.len() as u64).await?;
            match answer {
                Ok(()) => claim!(
                    got == before,
                    "revert-disks succeeded but the disk reads other bytes"
                ),
                Err(e) => {
                    refused::<()>(Err(e), &[Kind::Conflict], "revert-disks of a powered-on VM")?;
                    claim!(
                        got == pattern(62, before.len()),
                        "the refused revert changed the disk"
                    );
                }
            }
            Ok(())
        }
    ),
];
