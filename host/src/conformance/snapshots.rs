//! Snapshots keep their instant: writing the device after a snapshot does not change what
//! the snapshot reads.

use super::cx::CAP;
use super::support::{Kind, first_difference, pattern, refused, snapshot_of};
use super::{Check, Cx, Res, check, claim};

async fn after_write(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let before = pattern(11, 300_000);
    s.write(&dev, 4093, &before).await?;
    let token = cx.token();
    let snaps = s.snapshot(std::slice::from_ref(&dev), &token).await?;
    let snap = snapshot_of(&snaps, &dev)?.id.clone();
    s.write(&dev, 4093, &pattern(12, 300_000)).await?;
    let got = s.read(&dev, Some(&snap), 4093, before.len() as u64).await?;
    claim!(
        got == before,
        "the snapshot reads the writes made after it ({})",
        first_difference(&got, &before)
    );
    Ok(())
}

async fn two_snapshots(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let one = pattern(21, 100_000);
    s.write(&dev, 0, &one).await?;
    let t1 = cx.token();
    let first = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &t1).await?, &dev)?
        .id
        .clone();
    let two = pattern(22, 100_000);
    s.write(&dev, 0, &two).await?;
    let t2 = cx.token();
    let second = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &t2).await?, &dev)?
        .id
        .clone();
    s.write(&dev, 0, &pattern(23, 100_000)).await?;
    let got1 = s.read(&dev, Some(&first), 0, 100_000).await?;
    let got2 = s.read(&dev, Some(&second), 0, 100_000).await?;
    claim!(
        got1 == one,
        "the first snapshot reads later bytes ({})",
        first_difference(&got1, &one)
    );
    claim!(
        got2 == two,
        "the second snapshot reads later bytes ({})",
        first_difference(&got2, &two)
    );
    Ok(())
}

async fn new_blocks(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    s.write(&dev, 2 << 20, &pattern(31, 65_536)).await?;
    let got = s.read(&dev, Some(&snap), 2 << 20, 65_536).await?;
    claim!(
        got.iter().all(|b| *b == 0),
        "the snapshot of an empty device reads bytes written after it"
    );
    Ok(())
}

async fn reports(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let devs = cx.devices(&mut s, 2).await?;
    let token = cx.token();
    let snaps = s.snapshot(&devs, &token).await?;
    claim!(
        snaps.len() == 2,
        "two devices, {} snapshots answered",
        snaps.len()
    );
    for dev in &devs {
        let snap = snapshot_of(&snaps, dev)?;
        let listed = s.snapshots_of(dev).await?;
        claim!(
            listed.iter().any(|l| l.id == snap.id),
            "snapshot {} of {} is not listed",
            snap.id,
            dev.source()
        );
    }
    claim!(
        snaps[0].id != snaps[1].id,
        "both snapshots have id {}",
        snaps[0].id
    );
    Ok(())
}

async fn size(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    let r = s.reader(&dev, Some(&snap)).await?;
    let size = s.dp().reader_size(&r).await?;
    s.dp().close_reader(r).await?;
    claim!(
        size == CAP,
        "the snapshot's reader-size is {size}, the device has {CAP}"
    );
    Ok(())
}

async fn delete(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    let data = pattern(41, 50_000);
    s.write(&dev, 0, &data).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    s.delete_snapshot(&dev, &snap).await?;
    claim!(
        !s.snapshots_of(&dev).await?.iter().any(|l| l.id == snap),
        "deleted snapshot {snap} is still listed"
    );
    refused(
        s.reader(&dev, Some(&snap)).await,
        &[Kind::NotFound],
        "open-reader of a deleted snapshot",
    )?;
    let got = s.read(&dev, None, 0, data.len() as u64).await?;
    claim!(
        got == data,
        "deleting a snapshot changed the device ({})",
        first_difference(&got, &data)
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.snapshot.reports",
        StorageArray,
        [Basic],
        Nothing,
        "snapshot-luns of two LUNs answers one distinct snapshot per LUN naming it as source, and list-snapshots shows them.",
        |cx| { reports(cx).await }
    ),
    check!(
        "a.snapshot.size",
        StorageArray,
        [Basic],
        Nothing,
        "A LUN snapshot's reader-size is the LUN's capacity.",
        |cx| { size(cx).await }
    ),
    check!(
        "a.snapshot.delete",
        StorageArray,
        [Basic],
        Nothing,
        "A deleted LUN snapshot is gone from list-snapshots, cannot be opened (not-found), and the LUN keeps its bytes.",
        |cx| { delete(cx).await }
    ),
    check!(
        "a.isolation.after-write",
        StorageArray,
        [Isolation],
        Nothing,
        "A LUN snapshot reads the bytes of its instant after the LUN is overwritten.",
        |cx| { after_write(cx).await }
    ),
    check!(
        "a.isolation.two-snapshots",
        StorageArray,
        [Isolation],
        Nothing,
        "Two LUN snapshots with writes between them each read their own instant.",
        |cx| { two_snapshots(cx).await }
    ),
    check!(
        "a.isolation.new-blocks",
        StorageArray,
        [Isolation],
        Nothing,
        "A LUN snapshot reads zeroes where the LUN was first written after it.",
        |cx| { new_blocks(cx).await }
    ),
    check!(
        "h.snapshot.reports",
        Hypervisor,
        [Basic],
        Nothing,
        "snapshot-disks of two disks answers one distinct snapshot per disk naming it as source, and list-snapshots shows them.",
        |cx| { reports(cx).await }
    ),
    check!(
        "h.snapshot.size",
        Hypervisor,
        [Basic],
        Nothing,
        "A disk snapshot's reader-size is the disk's capacity.",
        |cx| { size(cx).await }
    ),
    check!(
        "h.snapshot.delete",
        Hypervisor,
        [Basic],
        Nothing,
        "A deleted disk snapshot is gone from list-snapshots, cannot be opened (not-found), and the disk keeps its bytes.",
        |cx| { delete(cx).await }
    ),
    check!(
        "h.isolation.after-write",
        Hypervisor,
        [Isolation],
        Nothing,
        "A disk snapshot reads the bytes of its instant after the disk is overwritten.",
        |cx| { after_write(cx).await }
    ),
    check!(
        "h.isolation.two-snapshots",
        Hypervisor,
        [Isolation],
        Nothing,
        "Two disk snapshots with writes between them each read their own instant.",
        |cx| { two_snapshots(cx).await }
    ),
    check!(
        "h.isolation.new-blocks",
        Hypervisor,
        [Isolation],
        Nothing,
        "A disk snapshot reads zeroes where the disk was first written after it.",
        |cx| { new_blocks(cx).await }
    ),
    check!(
        "h.isolation.attached",
        Hypervisor,
        [Isolation],
        Nothing,
        "A disk snapshot attached to another VM reads the snapshot's bytes there, not writes made to the source disk after it.",
        |cx| {
            let mut h = cx.hv().await?;
            let source = cx.new_vm(h.as_mut(), 1).await?;
            let proxy = cx.new_vm(h.as_mut(), 0).await?;
            let disk = source.devices[0].id.clone();
            let mut s = super::support::Sess::H(h);
            let dev = super::support::Dev::Disk {
                vm: source.id.clone(),
                id: disk.clone(),
            };
            let before = pattern(51, 70_000);
            s.write(&dev, 512, &before).await?;
            let token = cx.token();
            let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
                .id
                .clone();
            s.write(&dev, 512, &pattern(52, 70_000)).await?;
            let super::support::Sess::H(h) = &mut s else {
                unreachable!()
            };
            let token = cx.token();
            let attached = h
                .attach_snapshot(&proxy.id, &source.id, &snap, "/attached", &token)
                .await?;
            cx.attachments.push((proxy.id.clone(), attached.id.clone()));
            let seen = super::support::Dev::Disk {
                vm: proxy.id.clone(),
                id: attached.id.clone(),
            };
            let got = s.read(&seen, None, 512, before.len() as u64).await?;
            claim!(
                got == before,
                "the attached snapshot reads later writes ({})",
                first_difference(&got, &before)
            );
            claim!(
                attached.capacity == CAP,
                "the attached device has capacity {}, the disk {CAP}",
                attached.capacity
            );
            Ok(())
        }
    ),
];
