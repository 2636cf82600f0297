//! Extents: `allocated-extents` covers every byte written, `changed-extents` every byte
//! written since the older snapshot (a superset is fine: copies then read a little more).

use super::cx::CAP;
use super::support::{REGIONS, covers, pattern, snapshot_of};
use super::{Check, Cx, Res, check, claim};

async fn write_regions(
    cx: &mut Cx,
    s: &mut super::support::Sess,
    dev: &super::support::Dev,
) -> Res {
    let _ = cx;
    for (i, (offset, len)) in REGIONS.iter().enumerate() {
        s.write(dev, *offset, &pattern(80 + i as u64, *len)).await?;
    }
    Ok(())
}

fn all_covered(extents: &[crate::model::Extent], what: &str) -> Res {
    for (offset, len) in REGIONS {
        claim!(
            covers(extents, *offset, *len as u64),
            "{what} {extents:?} miss the {len} bytes written at {offset}"
        );
    }
    Ok(())
}

async fn allocated(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    write_regions(cx, &mut s, &dev).await?;
    let extents = s.extents(&dev, None, None).await?;
    all_covered(&extents, "allocated-extents")
}

async fn within(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    write_regions(cx, &mut s, &dev).await?;
    let extents = s.extents(&dev, None, None).await?;
    for e in &extents {
        claim!(
            e.length > 0 && e.offset.checked_add(e.length).is_some_and(|end| end <= CAP),
            "extent {e:?} does not lie within the {CAP}-byte device"
        );
    }
    Ok(())
}

async fn snapshot_allocated(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    write_regions(cx, &mut s, &dev).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    let extents = s.extents(&dev, Some(&snap), None).await?;
    all_covered(&extents, "allocated-extents of the snapshot")
}

async fn changed(cx: &mut Cx, live: bool) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    s.write(&dev, 0, &pattern(90, 8192)).await?;
    let token = cx.token();
    let older = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    write_regions(cx, &mut s, &dev).await?;
    let extents = if live {
        s.extents(&dev, None, Some(&older)).await?
    } else {
        let token = cx.token();
        let newer = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
            .id
            .clone();
        s.extents(&dev, Some(&newer), Some(&older)).await?
    };
    all_covered(&extents, "changed-extents")
}

async fn unchanged(cx: &mut Cx) -> Res {
    let mut s = cx.sess().await?;
    let dev = cx.device(&mut s).await?;
    write_regions(cx, &mut s, &dev).await?;
    let token = cx.token();
    let snap = snapshot_of(&s.snapshot(std::slice::from_ref(&dev), &token).await?, &dev)?
        .id
        .clone();
    let extents = s.extents(&dev, Some(&snap), Some(&snap)).await?;
    let bytes: u64 = extents.iter().map(|e| e.length).sum();
    claim!(
        bytes < CAP,
        "changed-extents of a snapshot since itself cover the whole device"
    );
    Ok(())
}

pub(super) const CHECKS: &[Check] = &[
    check!(
        "a.extents.allocated",
        StorageArray,
        [Extents],
        Nothing,
        "allocated-extents of a LUN cover every byte the suite wrote to it.",
        |cx| { allocated(cx).await }
    ),
    check!(
        "a.extents.within",
        StorageArray,
        [Extents],
        Nothing,
        "Every allocated extent of a LUN is non-empty and lies within the LUN.",
        |cx| { within(cx).await }
    ),
    check!(
        "a.extents.snapshot-allocated",
        StorageArray,
        [Extents],
        Nothing,
        "allocated-extents of a LUN snapshot cover every byte written before it.",
        |cx| { snapshot_allocated(cx).await }
    ),
    check!(
        "a.extents.changed",
        StorageArray,
        [Extents],
        Nothing,
        "changed-extents of a newer LUN snapshot since an older one cover every byte written between them.",
        |cx| { changed(cx, false).await }
    ),
    check!(
        "a.extents.changed-live",
        StorageArray,
        [Extents],
        Nothing,
        "changed-extents of the live LUN since a snapshot cover every byte written after it.",
        |cx| { changed(cx, true).await }
    ),
    check!(
        "a.extents.unchanged",
        StorageArray,
        [Extents],
        Nothing,
        "changed-extents of a LUN snapshot since itself do not cover the whole LUN.",
        |cx| { unchanged(cx).await }
    ),
    check!(
        "h.extents.allocated",
        Hypervisor,
        [Extents],
        Nothing,
        "allocated-extents of a virtual disk cover every byte the suite wrote to it.",
        |cx| { allocated(cx).await }
    ),
    check!(
        "h.extents.within",
        Hypervisor,
        [Extents],
        Nothing,
        "Every allocated extent of a virtual disk is non-empty and lies within the disk.",
        |cx| { within(cx).await }
    ),
    check!(
        "h.extents.snapshot-allocated",
        Hypervisor,
        [Extents],
        Nothing,
        "allocated-extents of a disk snapshot cover every byte written before it.",
        |cx| { snapshot_allocated(cx).await }
    ),
    check!(
        "h.extents.changed",
        Hypervisor,
        [Extents],
        Nothing,
        "changed-extents of a newer disk snapshot since an older one cover every byte written between them.",
        |cx| { changed(cx, false).await }
    ),
    check!(
        "h.extents.changed-live",
        Hypervisor,
        [Extents],
        Nothing,
        "changed-extents of the live disk since a snapshot cover every byte written after it.",
        |cx| { changed(cx, true).await }
    ),
    check!(
        "h.extents.unchanged",
        Hypervisor,
        [Extents],
        Nothing,
        "changed-extents of a disk snapshot since itself do not cover the whole disk.",
        |cx| { unchanged(cx).await }
    ),
];
